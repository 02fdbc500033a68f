using System.Diagnostics;
using System.Globalization;
using Shop.Hosting.ApplicationModel;

namespace Shop.Hosting.Orchestration;

internal sealed record OrchestratorOptions(string EnvironmentName, Uri? OtlpEndpoint, string? PostgresBinDirectory);

/// <summary>
/// Starts every resource once what it waits for is healthy, supervises each replica (health probes,
/// restart with backoff after a crash), and stops services before backing services.
/// </summary>
internal sealed class Orchestrator : IAsyncDisposable
{
    private static readonly TimeSpan StartupProbeInterval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan ProbeInterval = TimeSpan.FromSeconds(5);

    /// <summary>The least time between two probes of a replica when probes are asked for (<see cref="RecheckAsync"/>).</summary>
    private static readonly TimeSpan RequestedProbeSpacing = TimeSpan.FromMilliseconds(250);

    /// <summary>How long a proxy that found no replica ready waits for one after asking for probes.</summary>
    private static readonly TimeSpan RecheckWait = TimeSpan.FromSeconds(2);

    private readonly OrchestratorOptions _options;
    private readonly List<ResourceRuntime> _runtimes = [];
    private readonly Dictionary<ResourceRuntime, IResourceLauncher> _launchers = [];
    private readonly Dictionary<ResourceRuntime, SemaphoreSlim> _actionLocks = [];
    private readonly List<EndpointProxy> _proxies = [];
    private readonly CancellationTokenSource _stopping = new();

    /// <summary>
    /// The parents of every replica's lifetime, one per stop phase, each cancelled only once the phase before it has
    /// exited: services still finishing their work (an outbox batch, consumer acks, requests in flight) need their
    /// database and broker. Were lifetimes linked to <see cref="_stopping"/>, every replica would get its stop signal
    /// at once.
    /// </summary>
    private readonly CancellationTokenSource _servicesLifetime = new();
    private readonly CancellationTokenSource _backingLifetime = new();
    private readonly List<Task> _launches = [];

    /// <param name="launcherFor">Replaces the launcher of every resource with a process (tests run stand-in processes).</param>
    public Orchestrator(IReadOnlyList<Resource> resources, OrchestratorOptions options, Func<Resource, IResourceLauncher>? launcherFor = null)
    {
        _options = options;
        Run = new RunDirectory();
        foreach (var resource in resources)
        {
            var runtime = new ResourceRuntime(resource);
            switch (resource)
            {
                case ServerResource server:
                    server.Port = PortAllocator.GetFreePort();
                    runtime.Replicas.Add(new ReplicaRuntime(runtime, 0, 0));
                    _launchers[runtime] = launcherFor?.Invoke(server) ?? ServerLauncher(server);
                    break;
                case ProjectResource project:
                    for (var i = 0; i < project.Replicas; i++)
                    {
                        runtime.Replicas.Add(new ReplicaRuntime(runtime, i, PortAllocator.GetFreePort()));
                    }

                    _launchers[runtime] = launcherFor?.Invoke(project) ?? new ProjectLauncher(project, ProjectEnvironment);
                    break;
                default:
                    runtime.Replicas.Add(new ReplicaRuntime(runtime, 0, 0));
                    break;
            }

            _runtimes.Add(runtime);
            _actionLocks[runtime] = new SemaphoreSlim(1, 1);
        }

        Notifications = new ResourceNotificationService(_runtimes);
    }

    public RunDirectory Run { get; }

    public ResourceNotificationService Notifications { get; }

    public IReadOnlyList<ResourceRuntime> Runtimes => _runtimes;

    public Task StartAsync()
    {
        Run.StartWatchdog();
        foreach (var runtime in _runtimes)
        {
            if (runtime.Resource is ProjectResource project && project.HttpEndpoint.Port is { } port)
            {
                var proxy = new EndpointProxy(port, () => RunningEndpoints(runtime), cancellationToken => RecheckAsync(runtime, cancellationToken));
                _proxies.Add(proxy);
                runtime.ProxyEndpoint = new Uri($"http://127.0.0.1:{proxy.Port}");
            }
        }

        foreach (var runtime in _runtimes)
        {
            _launches.Add(LaunchAsync(runtime, _stopping.Token));
        }

        return Task.CompletedTask;
    }

    /// <summary>Services first (each gets a graceful stop with a time limit), then backing services, then the run's data.</summary>
    public async Task StopAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        await _stopping.CancelAsync();
        await Task.WhenAll(_launches).ContinueWith(_ => { }, TaskScheduler.Default);
        await StopPhaseAsync(_servicesLifetime, _runtimes.Where(r => r.Resource is ProjectResource));
        await StopPhaseAsync(_backingLifetime, _runtimes.Where(r => r.Resource is not ProjectResource));
        foreach (var launcher in _launchers.Values)
        {
            await launcher.StopAuxiliaryAsync();
        }

        foreach (var proxy in _proxies)
        {
            await proxy.DisposeAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        Run.Dispose();
        _stopping.Dispose();
        _servicesLifetime.Dispose();
        _backingLifetime.Dispose();
    }

    public Task StartResourceAsync(string name) => WithActionLock(name, runtime =>
    {
        foreach (var replica in runtime.Replicas.Where(r => r.Supervisor.IsCompleted))
        {
            StartReplica(replica);
        }

        return Task.CompletedTask;
    });

    public Task StopResourceAsync(string name) => WithActionLock(name, runtime => StopAllAsync([runtime]));

    public Task RestartResourceAsync(string name) => WithActionLock(name, async runtime =>
    {
        await StopAllAsync([runtime]);
        foreach (var replica in runtime.Replicas)
        {
            StartReplica(replica);
        }
    });

    private async Task WithActionLock(string name, Func<ResourceRuntime, Task> action)
    {
        var runtime = Notifications.Find(name);
        if (!runtime.HasProcess)
        {
            throw new InvalidOperationException($"'{name}' has no process of its own; control its server instead.");
        }

        if (_stopping.IsCancellationRequested)
        {
            throw new InvalidOperationException("The application is stopping.");
        }

        var gate = _actionLocks[runtime];
        await gate.WaitAsync();
        try
        {
            await action(runtime);
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>
    /// Cancels the phase first, so a replica a concurrent start or restart action starts now gets a lifetime that has
    /// already ended, then stops the phase's replicas and waits until they have exited.
    /// </summary>
    private static async Task StopPhaseAsync(CancellationTokenSource phase, IEnumerable<ResourceRuntime> runtimes)
    {
        await phase.CancelAsync();
        await StopAllAsync(runtimes);
    }

    private static async Task StopAllAsync(IEnumerable<ResourceRuntime> runtimes)
    {
        var replicas = runtimes.SelectMany(r => r.Replicas).ToList();
        foreach (var replica in replicas)
        {
            replica.Lifetime?.Cancel();
        }

        await Task.WhenAll(replicas.Select(r => r.Supervisor));
    }

    private async Task LaunchAsync(ResourceRuntime runtime, CancellationToken stopping)
    {
        var dependencies = runtime.Resource.AnnotationsOf<WaitAnnotation>().Select(w => w.Resource)
            .Concat(runtime.Resource.Parent is { } parent ? [parent] : [])
            .Distinct()
            .ToList();
        try
        {
            if (dependencies.Count > 0)
            {
                SetAll(runtime, r => r.State = ResourceState.Waiting);
                foreach (var dependency in dependencies)
                {
                    await Notifications.WaitForResourceHealthyAsync(dependency.Name, stopping);
                }
            }
        }
        catch (OperationCanceledException)
        {
            return;
        }
        catch (InvalidOperationException ex)
        {
            runtime.Logs.Add(new LogLine(DateTimeOffset.UtcNow, 0, true, ex.Message));
            SetAll(runtime, r => r.State = ResourceState.FailedToStart);
            return;
        }

        if (runtime.Resource is ParameterResource)
        {
            SetAll(runtime, r => (r.State, r.Health) = (ResourceState.Running, HealthState.Healthy));
            return;
        }

        if (runtime.Resource is PostgresDatabaseResource database)
        {
            _ = SuperviseDatabaseAsync(runtime, database, stopping);
            return;
        }

        foreach (var replica in runtime.Replicas)
        {
            StartReplica(replica);
        }
    }

    private void StartReplica(ReplicaRuntime replica)
    {
        replica.Lifetime?.Dispose();
        var phase = replica.Owner.Resource is ProjectResource ? _servicesLifetime : _backingLifetime;
        replica.Lifetime = CancellationTokenSource.CreateLinkedTokenSource(phase.Token);
        replica.Supervisor = SuperviseAsync(replica, _launchers[replica.Owner], replica.Lifetime.Token);
    }

    private async Task SuperviseAsync(ReplicaRuntime replica, IResourceLauncher launcher, CancellationToken lifetime)
    {
        await Task.Yield();
        var failures = 0;
        while (!lifetime.IsCancellationRequested)
        {
            Update(replica, r => (r.State, r.Health, r.ExitCode) = (ResourceState.Starting, HealthState.Unknown, null));
            ManagedProcess process;
            try
            {
                var spec = await launcher.PrepareAsync(replica, lifetime);
                process = ManagedProcess.Start(spec, Run, (isError, text) => replica.Owner.Logs.Add(new LogLine(DateTimeOffset.UtcNow, replica.Index, isError, text)));
            }
            catch (OperationCanceledException) when (lifetime.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                replica.Owner.Logs.Add(new LogLine(DateTimeOffset.UtcNow, replica.Index, true, $"Failed to start: {ex.Message}"));
                Update(replica, r => r.State = ResourceState.FailedToStart);
                return;
            }

            Update(replica, r => (r.Process, r.StartedAt) = (process, DateTimeOffset.UtcNow));
            using (var probing = CancellationTokenSource.CreateLinkedTokenSource(lifetime))
            {
                var probe = ProbeLoopAsync(replica, launcher, process, probing.Token);
                await Task.WhenAny(process.Exited, Task.Delay(Timeout.Infinite, lifetime)).ContinueWith(_ => { }, TaskScheduler.Default);
                await probing.CancelAsync();
                await probe;
            }

            if (lifetime.IsCancellationRequested)
            {
                Update(replica, r => r.State = ResourceState.Stopping);
                await process.StopAsync(launcher.StopGrace);
                var code = await process.Exited;
                Update(replica, r => (r.State, r.Health, r.ExitCode, r.Process) = (ResourceState.Stopped, HealthState.Unknown, code, null));
                process.Dispose();
                break;
            }

            var exitCode = await process.Exited;
            process.Kill();
            process.Dispose();
            failures = DateTimeOffset.UtcNow - replica.StartedAt > TimeSpan.FromSeconds(30) ? 1 : failures + 1;
            var delay = TimeSpan.FromSeconds(Math.Min(30, Math.Pow(2, failures - 1)));
            replica.Owner.Logs.Add(new LogLine(DateTimeOffset.UtcNow, replica.Index, true,
                $"Process exited with code {exitCode}; restarting in {delay.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s"));
            Update(replica, r => (r.State, r.Health, r.ExitCode, r.Process, r.Restarts) = (ResourceState.Restarting, HealthState.Unhealthy, exitCode, null, r.Restarts + 1));
            try
            {
                await Task.Delay(delay, lifetime);
            }
            catch (OperationCanceledException)
            {
                Update(replica, r => (r.State, r.Health) = (ResourceState.Stopped, HealthState.Unknown));
            }
        }
    }

    private async Task ProbeLoopAsync(ReplicaRuntime replica, IResourceLauncher launcher, ManagedProcess process, CancellationToken cancellationToken)
    {
        var healthyOnce = false;
        while (!cancellationToken.IsCancellationRequested && !process.Exited.IsCompleted)
        {
            bool healthy;
            var started = Stopwatch.GetTimestamp();
            replica.ProbeStarting();
            try
            {
                healthy = await launcher.ProbeAsync(replica, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception) when (cancellationToken.IsCancellationRequested)
            {
                // A probe cut short by a stop (a refused connection to a process being stopped) answers nothing; left to
                // escape, it failed the supervisor and with it the AppHost's shutdown.
                return;
            }

            if (process.Exited.IsCompleted || cancellationToken.IsCancellationRequested)
            {
                return;
            }

            healthyOnce |= healthy;
            var state = healthyOnce ? ResourceState.Running : ResourceState.Starting;
            var health = healthy ? HealthState.Healthy : healthyOnce ? HealthState.Unhealthy : HealthState.Unknown;
            if (replica.State != state || replica.Health != health)
            {
                Update(replica, r => (r.State, r.Health) = (state, health));
            }

            try
            {
                // The next probe is on schedule, or sooner when one is asked for, but never within the spacing of this one.
                using var sleeping = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                var interval = healthyOnce ? ProbeInterval : StartupProbeInterval;
                await Task.WhenAny(Task.Delay(interval, sleeping.Token), replica.ProbeRequested);
                await sleeping.CancelAsync();
                var wait = RequestedProbeSpacing - Stopwatch.GetElapsedTime(started);
                if (wait > TimeSpan.Zero && !cancellationToken.IsCancellationRequested)
                {
                    await Task.Delay(wait, cancellationToken);
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// A proxy found no replica of <paramref name="runtime"/> ready: the unready ones are probed at once, again and again
    /// (as often as <see cref="RequestedProbeSpacing"/> allows), until one is ready or <see cref="RecheckWait"/> has
    /// passed. Without it, a service whose replicas were all unready (its database was down, say) would be refused until
    /// each replica's next scheduled probe, up to 5 s after it was ready. Asking more than once covers a first probe that
    /// still fails, on a connection its pool held from before a database restart, say.
    /// </summary>
    private async Task RecheckAsync(ResourceRuntime runtime, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            foreach (var replica in runtime.Replicas.Where(r => r.State == ResourceState.Running && r.Health == HealthState.Unhealthy))
            {
                replica.RequestProbe();
            }

            var left = RecheckWait - Stopwatch.GetElapsedTime(started);
            if (left <= TimeSpan.Zero)
            {
                return;
            }

            using var waiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            waiting.CancelAfter(left < RequestedProbeSpacing ? left : RequestedProbeSpacing);
            try
            {
                await Notifications.WaitForResourceAsync(runtime.Resource.Name,
                    s => s.Replicas.Any(r => r.State == ResourceState.Running && r.Health != HealthState.Unhealthy), waiting.Token);
                return;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // None is ready yet: ask again. When the time is up, the proxy refuses the connection, as it would have
                // without asking.
            }
            catch (InvalidOperationException)
            {
                // The resource failed to start: nothing to wait for.
                return;
            }
        }
    }

    /// <summary>A database is created once its server is healthy, and is healthy while its server is.</summary>
    private async Task SuperviseDatabaseAsync(ResourceRuntime runtime, PostgresDatabaseResource database, CancellationToken stopping)
    {
        var replica = runtime.Replicas[0];
        Update(replica, r => r.State = ResourceState.Starting);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await PostgresLauncher.EnsureDatabaseAsync(database, stopping);
                Update(replica, r => (r.State, r.Health) = (ResourceState.Running, HealthState.Healthy));
                break;
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception ex) when (attempt < 20)
            {
                runtime.Logs.Add(new LogLine(DateTimeOffset.UtcNow, 0, true, $"Creating database '{database.DatabaseName}' failed: {ex.Message}"));
                await Task.Delay(500, stopping).ContinueWith(_ => { }, TaskScheduler.Default);
            }
            catch (Exception ex)
            {
                runtime.Logs.Add(new LogLine(DateTimeOffset.UtcNow, 0, true, $"Giving up creating database '{database.DatabaseName}': {ex.Message}"));
                Update(replica, r => r.State = ResourceState.FailedToStart);
                return;
            }
        }

        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), stopping);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            var server = Notifications.GetSnapshot(database.Server.Name);
            var (state, health) = server.IsHealthy ? (ResourceState.Running, HealthState.Healthy)
                : server.State is ResourceState.Stopped or ResourceState.Stopping ? (ResourceState.Stopped, HealthState.Unknown)
                : (ResourceState.Running, HealthState.Unhealthy);
            if (replica.State != state || replica.Health != health)
            {
                Update(replica, r => (r.State, r.Health) = (state, health));
            }
        }

        Update(replica, r => (r.State, r.Health) = (ResourceState.Stopped, HealthState.Unknown));
    }

    private IReadOnlyDictionary<string, string?> ProjectEnvironment(ReplicaRuntime replica)
    {
        var project = (ProjectResource)replica.Owner.Resource;
        var environment = new Dictionary<string, string?>
        {
            ["ASPNETCORE_URLS"] = replica.Endpoint!.ToString().TrimEnd('/'),
            ["DOTNET_ENVIRONMENT"] = _options.EnvironmentName,
            ["ASPNETCORE_ENVIRONMENT"] = _options.EnvironmentName,
            ["OTEL_SERVICE_NAME"] = project.Name,
            ["OTEL_RESOURCE_ATTRIBUTES"] = $"service.instance.id={replica.Id}",
        };
        if (_options.OtlpEndpoint is { } otlp)
        {
            environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp.ToString().TrimEnd('/');
            environment["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf";
            // Short export intervals, as Aspire uses in development, so the dashboard is current.
            environment["OTEL_BSP_SCHEDULE_DELAY"] = "1000";
            environment["OTEL_BLRP_SCHEDULE_DELAY"] = "1000";
            environment["OTEL_METRIC_EXPORT_INTERVAL"] = "5000";
        }

        foreach (var reference in project.AnnotationsOf<ReferenceAnnotation>().Select(r => r.Resource))
        {
            switch (reference)
            {
                case IResourceWithConnectionString withConnectionString:
                    environment[$"ConnectionStrings__{reference.Name}"] = withConnectionString.ConnectionString;
                    break;
                case ProjectResource:
                    foreach (var target in _runtimes.First(r => r.Resource == reference).Replicas)
                    {
                        environment[$"services__{reference.Name}__http__{target.Index}"] = target.Endpoint!.ToString().TrimEnd('/');
                    }

                    break;
            }
        }

        foreach (var (name, value) in project.ModelEnvironment(parameter => parameter.Value))
        {
            environment[name] = value;
        }

        return environment;
    }

    private IResourceLauncher ServerLauncher(ServerResource server) => server switch
    {
        PostgresServerResource postgres => new PostgresLauncher(postgres, Run, _options.PostgresBinDirectory),
        RedisResource redis => new RedisLauncher(redis, Run),
        RabbitMQServerResource rabbit => new RabbitMqLauncher(rabbit, Run),
        _ => throw new NotSupportedException(server.TypeName),
    };

    private static IReadOnlyList<Uri> RunningEndpoints(ResourceRuntime runtime) =>
        runtime.Replicas.Where(r => r.State == ResourceState.Running && r.Health != HealthState.Unhealthy).Select(r => r.Endpoint!).ToList();

    private void SetAll(ResourceRuntime runtime, Action<ReplicaRuntime> change)
    {
        foreach (var replica in runtime.Replicas)
        {
            Update(replica, change);
        }
    }

    private void Update(ReplicaRuntime replica, Action<ReplicaRuntime> change) => Notifications.Update(replica, change);
}
