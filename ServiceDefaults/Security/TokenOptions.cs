using System.ComponentModel.DataAnnotations;

namespace Shop.ServiceDefaults.Security;

/// <summary>How access tokens are validated (and, in the Gateway, issued).</summary>
public sealed class TokenOptions
{
    public const string Section = "Auth";

    [Required]
    public string Issuer { get; set; } = "shop-gateway";

    [Required]
    public string Audience { get; set; } = "shop-api";

    /// <summary>Where the public keys are published; a logical address resolved by service discovery.</summary>
    [Required]
    public string JwksUrl { get; set; } = "http://gateway/.well-known/jwks.json";

    [Range(0, 300)]
    public int ClockSkewSeconds { get; set; } = 30;

    /// <summary>How often services fetch the keys again (at 80 % of this); keys already held are kept while a fetch fails.</summary>
    [Range(10, 86400)]
    public int JwksCacheSeconds { get; set; } = 300;
}
