using System.Collections.Concurrent;
using Microsoft.Extensions.Configuration;

namespace Shop.ServiceDefaults.Discovery;

/// <summary>
/// Resolves a logical service name to one of its endpoints from Aspire's configuration shape
/// (<c>services__{service}__{endpoint}__{index}</c>), spreading calls over the replicas round-robin.
/// Configuration is read on every call so reloaded endpoints take effect without a restart.
/// </summary>
public sealed class ServiceEndpointResolver(IConfiguration configuration)
{
    private readonly ConcurrentDictionary<string, int> _cursors = new(StringComparer.OrdinalIgnoreCase);

    public IReadOnlyList<Uri> GetEndpoints(string service, string endpointName = "http")
    {
        var section = configuration.GetSection($"services:{service}:{endpointName}");
        return section.GetChildren()
            .Where(child => int.TryParse(child.Key, out _))
            .OrderBy(child => int.Parse(child.Key, System.Globalization.CultureInfo.InvariantCulture))
            .Select(child => Uri.TryCreate(child.Value, UriKind.Absolute, out var uri) ? uri : null)
            .OfType<Uri>()
            .ToList();
    }

    /// <summary>Returns the next endpoint for the service, or null when the name is not a configured service.</summary>
    public Uri? Resolve(string service, string endpointName = "http")
    {
        var endpoints = GetEndpoints(service, endpointName);
        if (endpoints.Count == 0)
        {
            return null;
        }

        var next = _cursors.AddOrUpdate($"{service}/{endpointName}", 0, (_, current) => unchecked(current + 1));
        return endpoints[(int)((uint)next % (uint)endpoints.Count)];
    }
}
