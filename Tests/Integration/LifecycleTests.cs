using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Shop.Hosting.Orchestration;

namespace Shop.Tests.Integration;

[Collection(AppCollection.Name)]
public sealed class LifecycleTests(AppFixture fixture)
{
    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_crashed_service_replica_is_restarted_and_becomes_healthy_again()
    {
        var app = fixture.App;
        var before = app.ResourceNotifications.GetSnapshot("notifications").Replicas.Single();

        using (var process = Process.GetProcessById(before.Pid!.Value))
        {
            process.Kill();
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        var after = await app.ResourceNotifications.WaitForResourceAsync("notifications",
            s => s.IsHealthy && s.Replicas.Single().Restarts == before.Restarts + 1, timeout.Token);

        Assert.NotEqual(before.Pid, after.Replicas.Single().Pid);
        Assert.Contains(app.Orchestrator.Notifications.Find("notifications").Logs.Tail(200),
            line => line.Text.StartsWith("Process exited with code", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_second_app_runs_beside_the_first_and_stopping_it_leaves_no_process_or_data_behind()
    {
        var second = await AppFixture.StartAsync();
        List<int> pids;
        string runDirectory;
        try
        {
            Assert.NotEqual(fixture.App.GetEndpoint("gateway"), second.GetEndpoint("gateway"));
            Assert.NotEqual(fixture.App.GetConnectionString("postgres"), second.GetConnectionString("postgres"));
            Assert.NotEqual(fixture.App.RunDirectory, second.RunDirectory);
            using var gateway = second.CreateHttpClient("gateway");
            using var products = await gateway.GetAsync("/v1/products", Cancellation);
            Assert.True(products.IsSuccessStatusCode);

            runDirectory = second.RunDirectory;
            pids = ReadPids(runDirectory);
            Assert.True(pids.Count >= 10, $"expected every process of the run to be registered, saw {pids.Count}");
        }
        finally
        {
            await second.DisposeAsync();
        }

        Assert.All(pids, pid => Assert.False(ProcessEnvironment.IsAlive(pid), $"process {pid} outlived the app"));
        Assert.False(Directory.Exists(runDirectory));
        Assert.All(fixture.App.ResourceNotifications.GetSnapshots(), s => Assert.True(s.IsHealthy, $"{s.Name} was disturbed"));
    }

    [Fact]
    public async Task After_the_AppHost_is_killed_with_SIGKILL_nothing_it_started_is_running_15_seconds_later()
    {
        var appHost = typeof(Program).Assembly.Location;
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { appHost, "--environment=Development", "--AppHost:GatewayPort=0", "--AppHost:DashboardPort=0" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        using var host = Process.Start(start)!;
        var pids = new List<int>();
        string? runDirectory = null;
        try
        {
            string? dashboard = null;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
            timeout.CancelAfter(AppFixture.StartTimeout);
            while (dashboard is null && await host.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                runDirectory ??= line.StartsWith("Run data: ", StringComparison.Ordinal) ? line["Run data: ".Length..] : null;
                dashboard = line.StartsWith("Dashboard: ", StringComparison.Ordinal) ? line["Dashboard: ".Length..] : null;
            }

            Assert.NotNull(dashboard);
            Assert.NotNull(runDirectory);
            using var client = new HttpClient();
            var resources = await client.GetFromJsonAsync<JsonElement>($"{dashboard}/api/resources", Cancellation);
            Assert.All(resources.EnumerateArray(), r => Assert.Equal("Healthy", r.GetProperty("health").GetString()));
            pids = ReadPids(runDirectory);
            Assert.True(pids.Count >= 10);

            host.Kill();
            await host.WaitForExitAsync(Cancellation);
            var deadline = Stopwatch.StartNew();
            while (deadline.Elapsed < TimeSpan.FromSeconds(15) && (pids.Any(ProcessEnvironment.IsAlive) || Directory.Exists(runDirectory)))
            {
                await Task.Delay(250, Cancellation);
            }

            Assert.All(pids, pid => Assert.False(ProcessEnvironment.IsAlive(pid), $"process {pid} survived the AppHost"));
            Assert.False(Directory.Exists(runDirectory), "the run's data was not removed");
        }
        finally
        {
            // If the assertion failed, do not leave the machine dirty for the next test.
            if (!host.HasExited)
            {
                host.Kill();
            }

            foreach (var pid in pids.Where(ProcessEnvironment.IsAlive))
            {
                NativeMethods.SignalGroup(pid, NativeMethods.SIGKILL);
            }
        }
    }

    private static List<int> ReadPids(string runDirectory) =>
        File.ReadAllLines(Path.Combine(runDirectory, "pids"))
            .Select(line => int.Parse(line.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture))
            .ToList();
}
