namespace Shop.Gateway.Edge;

public sealed class CorsSettings
{
    public const string Section = "Cors";

    /// <summary>Browser origins allowed to call the API (exact matches); empty allows none.</summary>
    public string[] AllowedOrigins { get; set; } = [];
}

/// <summary>
/// Which proxies may tell the Gateway the client's address (<c>X-Forwarded-For</c>) and scheme: loopback always (the
/// AppHost's endpoint proxy, a local load balancer), and the networks listed here (a deployment's ingress).
/// </summary>
public sealed class ForwardedHeadersSettings
{
    public const string Section = "ForwardedHeaders";

    /// <summary>CIDR ranges of trusted proxies besides loopback, e.g. <c>10.0.0.0/8</c>; empty trusts loopback only.</summary>
    public string[] KnownNetworks { get; set; } = [];

    /// <summary>The ranges trusted, loopback first; a range that does not parse stops the Gateway at start.</summary>
    public IReadOnlyList<System.Net.IPNetwork> Trusted() =>
    [
        System.Net.IPNetwork.Parse("127.0.0.0/8"),
        System.Net.IPNetwork.Parse("::1/128"),
        .. KnownNetworks.Select(range => System.Net.IPNetwork.TryParse(range, out var network)
            ? network
            : throw new InvalidOperationException($"{Section}:{nameof(KnownNetworks)} holds '{range}', which is not a CIDR range such as 10.0.0.0/8.")),
    ];
}
