namespace Shop.ServiceDefaults.Discovery;

/// <summary>
/// Rewrites <c>http://inventory/...</c> to a concrete replica's address. It sits inside the resilience
/// handler, so every retry attempt resolves again and may land on another replica.
/// </summary>
public sealed class ServiceDiscoveryHandler(ServiceEndpointResolver resolver) : DelegatingHandler
{
    private static readonly HttpRequestOptionsKey<Uri> LogicalUri = new("Shop.LogicalUri");

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        // A retry sends the same request again: resolve from the logical address, not the replica picked last time.
        var logical = request.Options.TryGetValue(LogicalUri, out var original) ? original : request.RequestUri;
        if (logical is not null && TryResolve(logical, out var resolved))
        {
            request.Options.Set(LogicalUri, logical);
            request.RequestUri = resolved;
        }

        return base.SendAsync(request, cancellationToken);
    }

    private bool TryResolve(Uri logical, out Uri resolved)
    {
        resolved = logical;
        // "https+http://name" means: prefer the https endpoint, fall back to http (Aspire's convention).
        var schemes = logical.Scheme.Split('+');
        if (logical.Host.Contains('.', StringComparison.Ordinal) || logical.HostNameType != UriHostNameType.Dns)
        {
            return false;
        }

        foreach (var scheme in schemes)
        {
            if (resolver.Resolve(logical.Host, scheme) is { } endpoint)
            {
                resolved = new UriBuilder(logical)
                {
                    Scheme = endpoint.Scheme,
                    Host = endpoint.Host,
                    Port = endpoint.Port,
                }.Uri;
                return true;
            }
        }

        return false;
    }
}
