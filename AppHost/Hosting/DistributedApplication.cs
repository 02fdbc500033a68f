using System.Runtime.InteropServices;
using Microsoft.Extensions.Configuration;
using Shop.Hosting.ApplicationModel;
using Shop.Hosting.Dashboard;
using Shop.Hosting.Orchestration;
using Shop.Hosting.Testing;

namespace Shop.Hosting;

/// <summary>The running distributed application: orchestrator, dashboard and the resources' state.</summary>
public sealed class DistributedApplication : IAsyncDisposable
{
    internal static readonly AsyncLocal<TestingHook?> TestingHook = new();

    private readonly Orchestrator _orchestrator;
    private readonly DashboardServer _dashboard;
    private readonly TextWriter _console;
    private readonly string? _publisher;
    private readonly string? _outputPath;
    private int _disposed;

    internal DistributedApplication(IDistributedApplicationBuilder builder, IReadOnlyList<Resource> resources)
    {
        Resources = resources;
        var configuration = builder.Configuration;
        _console = configuration.GetValue("AppHost:Quiet", false) ? TextWriter.Null : Console.Out;
        _publisher = configuration["publisher"];
        _outputPath = configuration["output-path"];
        _dashboard = new DashboardServer(configuration.GetValue("AppHost:DashboardPort", 18888));
        _orchestrator = new Orchestrator(resources, new OrchestratorOptions(
            builder.EnvironmentName,
            _dashboard.OtlpEndpoint,
            configuration["AppHost:PostgresBin"]));
        _dashboard.Attach(_orchestrator);
    }

    public static IDistributedApplicationBuilder CreateBuilder(string[] args)
    {
        var hook = TestingHook.Value;
        return new DistributedApplicationBuilder(hook is null ? args : [.. args, .. hook.Arguments]);
    }

    public IReadOnlyList<Resource> Resources { get; }

    public ResourceNotificationService ResourceNotifications => _orchestrator.Notifications;

    public Uri DashboardUrl => _dashboard.Url;

    /// <summary>The folder holding this run's data; removed when the application stops.</summary>
    public string RunDirectory => _orchestrator.Run.Path;

    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        await _dashboard.StartAsync(cancellationToken);
        await _orchestrator.StartAsync();
    }

    public Task StopAsync() => _orchestrator.StopAsync();

    public void Run() => RunAsync().GetAwaiter().GetResult();

    /// <summary>
    /// Starts everything, reports progress, and stops in order on Ctrl+C or SIGTERM. With
    /// <c>--publisher manifest --output-path &lt;file&gt;</c> it writes the Aspire manifest instead and starts nothing.
    /// </summary>
    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await RunUntilStoppedAsync(cancellationToken);
        }
        finally
        {
            // Also when the start failed (the dashboard's port taken, say): the run's folder exists from Build on, and
            // no watchdog is there yet to remove it.
            await DisposeAsync();
        }
    }

    private async Task RunUntilStoppedAsync(CancellationToken cancellationToken)
    {
        if (_publisher is { } publisher)
        {
            if (publisher != "manifest")
            {
                throw new InvalidOperationException($"Unknown publisher '{publisher}'; the one supported is 'manifest'.");
            }

            var output = _outputPath ?? "aspire-manifest.json";
            Publishing.ManifestPublisher.Write(Resources, output);
            await _console.WriteLineAsync($"Wrote the Aspire manifest to {Path.GetFullPath(output)}");
            return;
        }

        using var shutdown = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            shutdown.Cancel();
        }

        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var progress = new ConsoleProgress(_console, ResourceNotifications, Resources);

        await _console.WriteLineAsync($"Run data: {RunDirectory}");
        await StartAsync(shutdown.Token);
        _ = ReportWhenHealthyAsync(shutdown.Token);
        try
        {
            await Task.Delay(Timeout.Infinite, shutdown.Token);
        }
        catch (OperationCanceledException)
        {
        }

        await _console.WriteLineAsync("Stopping: services first, then backing services…");
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        await DisposeAsync();
        await _console.WriteLineAsync($"Stopped in {stopwatch.Elapsed.TotalSeconds:F1} s; run data removed.");
    }

    public Uri GetEndpoint(string resourceName, int replica = 0)
    {
        var runtime = _orchestrator.Notifications.Find(resourceName);
        return runtime.ProxyEndpoint ?? runtime.Replicas[replica].Endpoint
            ?? throw new InvalidOperationException($"'{resourceName}' has no HTTP endpoint.");
    }

    public string GetConnectionString(string resourceName) =>
        Resources.OfType<IResourceWithConnectionString>().FirstOrDefault(r => r.Name == resourceName)?.ConnectionString
        ?? throw new InvalidOperationException($"'{resourceName}' has no connection string.");

    public HttpClient CreateHttpClient(string resourceName, int? replica = null) =>
        new() { BaseAddress = replica is { } index ? _orchestrator.Notifications.Find(resourceName).Replicas[index].Endpoint : GetEndpoint(resourceName) };

    internal Orchestrator Orchestrator => _orchestrator;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        await _orchestrator.DisposeAsync();
        await _dashboard.DisposeAsync();
    }

    private async Task ReportWhenHealthyAsync(CancellationToken cancellationToken)
    {
        try
        {
            foreach (var resource in Resources)
            {
                await ResourceNotifications.WaitForResourceHealthyAsync(resource.Name, cancellationToken);
            }

            var gateway = Resources.OfType<ProjectResource>().FirstOrDefault(p => p.HttpEndpoint.IsExternal);
            await _console.WriteLineAsync();
            if (gateway is not null)
            {
                await _console.WriteLineAsync($"Gateway: {GetEndpoint(gateway.Name).ToString().TrimEnd('/')}");
            }

            await _console.WriteLineAsync($"Dashboard: {DashboardUrl.ToString().TrimEnd('/')}");
            foreach (var parameter in Resources.OfType<ParameterResource>().Where(p => p.Generated && p.PrintLabel is not null))
            {
                await _console.WriteLineAsync($"{parameter.PrintLabel}: {parameter.Value}");
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (InvalidOperationException ex)
        {
            await _console.WriteLineAsync($"Not everything started: {ex.Message} Dashboard: {DashboardUrl}");
        }
    }
}
