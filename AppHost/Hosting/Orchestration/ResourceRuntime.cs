using Shop.Hosting.ApplicationModel;

namespace Shop.Hosting.Orchestration;

public enum ResourceState { NotStarted, Waiting, Starting, Running, Stopping, Stopped, Exited, FailedToStart, Restarting }

public enum HealthState { Unknown, Healthy, Unhealthy }

/// <summary>One running copy of a resource. Mutated only by its supervisor; read by snapshots.</summary>
internal sealed class ReplicaRuntime(ResourceRuntime owner, int index, int port)
{
    private TaskCompletionSource _probeRequest = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ResourceRuntime Owner { get; } = owner;
    public int Index { get; } = index;
    public string Id => $"{Owner.Resource.Name}-{Index}";
    public int Port { get; } = port;
    public Uri? Endpoint => Port == 0 ? null : new Uri($"http://127.0.0.1:{Port}");
    public ResourceState State { get; set; } = ResourceState.NotStarted;
    public HealthState Health { get; set; } = HealthState.Unknown;
    public ManagedProcess? Process { get; set; }
    public int Restarts { get; set; }
    public DateTimeOffset? StartedAt { get; set; }
    public int? ExitCode { get; set; }
    public CancellationTokenSource? Lifetime { get; set; }
    public Task Supervisor { get; set; } = Task.CompletedTask;

    /// <summary>Completes when someone asks for a probe of this replica before its next scheduled one.</summary>
    public Task ProbeRequested => Volatile.Read(ref _probeRequest).Task;

    public void RequestProbe() => Volatile.Read(ref _probeRequest).TrySetResult();

    /// <summary>Called as a probe starts: it answers every request made until now.</summary>
    public void ProbeStarting()
    {
        var current = Volatile.Read(ref _probeRequest);
        if (current.Task.IsCompleted)
        {
            Interlocked.CompareExchange(ref _probeRequest, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), current);
        }
    }

    public ReplicaSnapshot Snapshot() => new(Index, Id, Process is { Exited.IsCompleted: false } p ? p.Pid : null, State, Health,
        Restarts, Endpoint?.ToString().TrimEnd('/'), StartedAt, ExitCode);
}

internal sealed class ResourceRuntime(Resource resource)
{
    public Resource Resource { get; } = resource;
    public List<ReplicaRuntime> Replicas { get; } = [];
    public LogBuffer Logs { get; } = new();

    /// <summary>The stable address in front of the replicas, if the resource has one (the Gateway's external endpoint).</summary>
    public Uri? ProxyEndpoint { get; set; }

    public bool HasProcess => Resource is not (PostgresDatabaseResource or ParameterResource);

    public ResourceSnapshot Snapshot()
    {
        var replicas = Replicas.Select(r => r.Snapshot()).ToList();
        var endpoints = new List<string>();
        if (ProxyEndpoint is { } proxy)
        {
            endpoints.Add(proxy.ToString().TrimEnd('/'));
        }

        endpoints.AddRange(replicas.Select(r => r.Endpoint).OfType<string>());
        return new ResourceSnapshot(
            Resource.Name,
            Resource.TypeName,
            AggregateState(replicas),
            AggregateHealth(replicas),
            Resource.Parent?.Name,
            Resource.AnnotationsOf<WaitAnnotation>().Select(w => w.Resource.Name)
                .Concat(Resource.Parent is { } parent ? [parent.Name] : []).Distinct().ToList(),
            endpoints,
            HasProcess,
            replicas);
    }

    private static ResourceState AggregateState(List<ReplicaSnapshot> replicas)
    {
        ResourceState[] precedence =
        [
            ResourceState.FailedToStart, ResourceState.Restarting, ResourceState.Stopping, ResourceState.Starting,
            ResourceState.Waiting, ResourceState.Exited, ResourceState.NotStarted, ResourceState.Stopped,
        ];
        if (replicas.All(r => r.State == ResourceState.Running))
        {
            return ResourceState.Running;
        }

        return precedence.FirstOrDefault(s => replicas.Any(r => r.State == s), ResourceState.Running);
    }

    private static HealthState AggregateHealth(List<ReplicaSnapshot> replicas) =>
        replicas.All(r => r.State == ResourceState.Running && r.Health == HealthState.Healthy) ? HealthState.Healthy
        : replicas.Any(r => r.Health == HealthState.Unhealthy) ? HealthState.Unhealthy
        : HealthState.Unknown;
}

public sealed record ReplicaSnapshot(int Index, string Id, int? Pid, ResourceState State, HealthState Health, int Restarts,
    string? Endpoint, DateTimeOffset? StartedAt, int? ExitCode);

public sealed record ResourceSnapshot(string Name, string Type, ResourceState State, HealthState Health, string? Parent,
    IReadOnlyList<string> WaitsFor, IReadOnlyList<string> Endpoints, bool CanControl, IReadOnlyList<ReplicaSnapshot> Replicas)
{
    public bool IsHealthy => State == ResourceState.Running && Health == HealthState.Healthy;
}
