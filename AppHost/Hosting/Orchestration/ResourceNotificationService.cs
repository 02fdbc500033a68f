namespace Shop.Hosting.Orchestration;

/// <summary>Snapshots of every resource and a way to wait for a state, as Aspire's ResourceNotificationService.</summary>
public sealed class ResourceNotificationService
{
    private readonly Dictionary<string, ResourceRuntime> _resources;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal ResourceNotificationService(IEnumerable<ResourceRuntime> resources) =>
        _resources = resources.ToDictionary(r => r.Resource.Name, StringComparer.Ordinal);

    /// <summary>Raised after any replica changes state or health (on the thread that changed it).</summary>
    public event Action<ResourceSnapshot>? Changed;

    public IReadOnlyList<ResourceSnapshot> GetSnapshots()
    {
        lock (_resources)
        {
            return _resources.Values.Select(r => r.Snapshot()).ToList();
        }
    }

    public ResourceSnapshot GetSnapshot(string name)
    {
        lock (_resources)
        {
            return Find(name).Snapshot();
        }
    }

    public Task<ResourceSnapshot> WaitForResourceHealthyAsync(string name, CancellationToken cancellationToken = default) =>
        WaitForResourceAsync(name, s => s.IsHealthy, cancellationToken);

    public async Task<ResourceSnapshot> WaitForResourceAsync(string name, Func<ResourceSnapshot, bool> predicate, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            Task changed;
            lock (_resources)
            {
                var snapshot = Find(name).Snapshot();
                if (predicate(snapshot))
                {
                    return snapshot;
                }

                if (snapshot.State == ResourceState.FailedToStart)
                {
                    throw new InvalidOperationException($"Resource '{name}' failed to start; see its console log.");
                }

                changed = _changed.Task;
            }

            await changed.WaitAsync(cancellationToken);
        }
    }

    internal ResourceRuntime Find(string name) =>
        _resources.TryGetValue(name, out var runtime) ? runtime : throw new KeyNotFoundException($"No resource named '{name}'.");

    internal void Update(ReplicaRuntime replica, Action<ReplicaRuntime> change)
    {
        ResourceSnapshot snapshot;
        lock (_resources)
        {
            change(replica);
            snapshot = replica.Owner.Snapshot();
            var previous = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            previous.SetResult();
        }

        Changed?.Invoke(snapshot);
    }
}
