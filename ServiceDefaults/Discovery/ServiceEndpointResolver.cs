using System.Collections.Concurrent;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Primitives;

namespace Shop.ServiceDefaults.Discovery;

/// <summary>
/// Resolves a logical service name to one of its endpoints from Aspire's configuration shape
/// (<c>services__{service}__{endpoint}__{index}</c>), spreading calls over the replicas round-robin.
/// The endpoints are read once and kept until configuration reloads, so reloaded endpoints take effect without a
/// restart; reading them walks every configuration key, too much for every call.
/// </summary>
public sealed class ServiceEndpointResolver
{
    private readonly IConfiguration _configuration;
    private readonly ConcurrentDictionary<string, int> _cursors = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<(string Service, string Endpoint), IReadOnlyList<Uri>> _endpoints = new();

    public ServiceEndpointResolver(IConfiguration configuration)
    {
        _configuration = configuration;
        ChangeToken.OnChange(configuration.GetReloadToken, _endpoints.Clear);
    }

    /// <summary>The service's endpoints in index order; the same list instance until configuration changes.</summary>
    public IReadOnlyList<Uri> GetEndpoints(string service, string endpointName = "http") =>
        _endpoints.GetOrAdd((service.ToLowerInvariant(), endpointName.ToLowerInvariant()), key => _configuration
            .GetSection($"services:{key.Service}:{key.Endpoint}")
            .GetChildren()
            .Where(child => int.TryParse(child.Key, out _))
            .OrderBy(child => int.Parse(child.Key, System.Globalization.CultureInfo.InvariantCulture))
            .Select(child => Uri.TryCreate(child.Value, UriKind.Absolute, out var uri) ? uri : null)
            .OfType<Uri>()
            .ToList());

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
