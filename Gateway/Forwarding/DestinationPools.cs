using System.Collections.Concurrent;
using Shop.ServiceDefaults.Discovery;

namespace Shop.Gateway.Forwarding;

/// <summary>The destinations of each service, kept in step with service discovery's configuration.</summary>
public sealed class DestinationPools(ServiceEndpointResolver resolver)
{
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<Uri, Destination>> _pools = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, (IReadOnlyList<Uri> Endpoints, IReadOnlyList<Destination> Destinations)> _current =
        new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, int> _cursors = new(StringComparer.OrdinalIgnoreCase);

    public IReadOnlyCollection<string> Services => _pools.Keys.ToList();

    /// <summary>The service's destinations; rebuilt only when discovery's endpoints change (their health state is kept).</summary>
    public IReadOnlyList<Destination> All(string service)
    {
        var endpoints = resolver.GetEndpoints(service);
        if (_current.TryGetValue(service, out var current) && ReferenceEquals(current.Endpoints, endpoints))
        {
            return current.Destinations;
        }

        var pool = _pools.GetOrAdd(service, _ => new ConcurrentDictionary<Uri, Destination>());
        foreach (var gone in pool.Keys.Except(endpoints).ToList())
        {
            pool.TryRemove(gone, out _);
        }

        var destinations = endpoints.Select(endpoint => pool.GetOrAdd(endpoint, e => new Destination(e))).ToList();
        _current[service] = (endpoints, destinations);
        return destinations;
    }

    /// <summary>The next available destination round-robin, skipping those already tried; null when none is available.</summary>
    public Destination? Pick(string service, DateTimeOffset now, IReadOnlyCollection<Destination> tried)
    {
        var candidates = All(service).Where(d => d.IsAvailable(now) && !tried.Contains(d)).ToList();
        if (candidates.Count == 0)
        {
            return null;
        }

        var next = _cursors.AddOrUpdate(service, 0, (_, current) => unchecked(current + 1));
        return candidates[(int)((uint)next % (uint)candidates.Count)];
    }
}
