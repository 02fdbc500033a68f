using System.ComponentModel.DataAnnotations;

namespace Shop.Gateway.Identity;

public sealed class IdentityOptions
{
    public const string Section = "Identity";

    [Range(1, 60)]
    public int AccessTokenMinutes { get; set; } = 10;

    [Range(1, 90)]
    public int RefreshTokenDays { get; set; } = 14;

    [Range(1, 365)]
    public int KeyRotationDays { get; set; } = 30;

    /// <summary>A new key is published this long before it signs, so services have fetched it by then.</summary>
    [Range(0, 1440)]
    public int KeyActivationDelayMinutes { get; set; } = 10;

    /// <summary>
    /// How long a replica trusts its memory of revoked tokens after the revocation channel last answered (ADR 0008's
    /// lease). A logout returns this much later, once no replica can accept the token. 0 asks Redis on every request.
    /// </summary>
    [Range(0, 10_000)]
    public int RevocationLeaseMilliseconds { get; set; } = 250;

    /// <summary>Live revocations a replica holds in memory at most; beyond that it asks Redis.</summary>
    [Range(1, 10_000_000)]
    public int RevocationMaxEntries { get; set; } = 100_000;

    /// <summary>
    /// How long a Redis call of identity (the revocation check and its write, the failed-login throttle) may take before
    /// it counts as failed. An awaited StackExchange.Redis command has no time limit of its own, and a Redis that stalls
    /// without closing its connections (paused, swapping, a network that drops packets) would hold every signed-in request.
    /// </summary>
    [Range(1, 60_000)]
    public int RedisTimeoutMilliseconds { get; set; } = 500;

    /// <summary>Failed logins per account before it is throttled, and for how long.</summary>
    [Range(1, 100)]
    public int MaxFailedLogins { get; set; } = 5;

    [Range(1, 1440)]
    public int FailedLoginWindowMinutes { get; set; } = 15;

    /// <summary>Client id → secret for the client-credentials grant (service identities); handed down by the AppHost.</summary>
    public Dictionary<string, string> ServiceClients { get; set; } = [];

    public SeedOptions Seed { get; set; } = new();

    public sealed class SeedOptions
    {
        public string Tenant { get; set; } = "demo";
        public string AdminEmail { get; set; } = "admin@demo.local";
        public string AdminPassword { get; set; } = "";
    }
}
