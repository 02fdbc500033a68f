using Shop.Hosting;
using Shop.Hosting.Testing;

namespace Shop.Tests.Integration;

/// <summary>
/// One start of the whole distributed application (real PostgreSQL, Redis, RabbitMQ and the four services,
/// random ports, private data), shared by the tests of the "app" collection and stopped after them.
/// </summary>
public sealed class AppFixture : IAsyncLifetime
{
    public static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(3);

    public DistributedApplication App { get; private set; } = null!;

    public const string AdminPassword = "Integration-Admin-Password-1";

    public async ValueTask InitializeAsync()
    {
        // Three Gateway replicas: everything the Gateway promises must hold across replicas. They run with the forwarded
        // headers switch that the manifest (as Aspire's) gives a deployment, so the tests meet the edge a deployment has.
        App = await StartAsync("--AppHost:Replicas:gateway=3", $"--AppHost:AdminPassword={AdminPassword}",
            "--AppHost:Environment:gateway:ASPNETCORE_FORWARDEDHEADERS_ENABLED=true");
    }

    public async ValueTask DisposeAsync()
    {
        await App.DisposeAsync();
    }

    /// <summary>The resources that are not healthy, with the last lines of their console, for a failed start.</summary>
    private static string Describe(DistributedApplication app) => string.Join(" | ", app.ResourceNotifications.GetSnapshots()
        .Where(s => !s.IsHealthy)
        .Select(s => $"{s.Name}: {s.State}/{s.Health}; " + string.Join(" / ",
            app.Orchestrator.Notifications.Find(s.Name).Logs.Tail(5).Select(l => l.Text.Length > 300 ? l.Text[..300] : l.Text))));

    /// <summary>Starts a fresh application and waits until every resource is healthy.</summary>
    public static async Task<DistributedApplication> StartAsync(params string[] args)
    {
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Program>(args);
        var app = await builder.BuildAsync();
        try
        {
            using var timeout = new CancellationTokenSource(StartTimeout);
            await app.StartAsync(timeout.Token);
            try
            {
                foreach (var resource in app.Resources)
                {
                    await app.ResourceNotifications.WaitForResourceHealthyAsync(resource.Name, timeout.Token);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or InvalidOperationException)
            {
                throw new TimeoutException($"The application did not become healthy: {Describe(app)}", ex);
            }

            return app;
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
    }
}

[CollectionDefinition(Name)]
public sealed class AppCollection : ICollectionFixture<AppFixture>
{
    public const string Name = "app";
}
