using Microsoft.Extensions.Options;

namespace Shop.Gateway.RateLimiting;

/// <summary>The <c>RateLimiting</c> configuration section: the policies and how the limits are shared through Redis.</summary>
public sealed class RateLimitingOptions
{
    public const string SectionName = "RateLimiting";

    public const string AnonymousPolicy = "anonymous";
    public const string UserPolicy = "user";
    public const string AuthPolicy = "auth";

    public Dictionary<string, RateLimitPolicy> Policies { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Paths whose POSTs take the <c>auth</c> policy, partitioned by client IP.</summary>
    public List<string> AuthPaths { get; set; } = [];

    public string KeyPrefix { get; set; } = "ratelimit";

    /// <summary>
    /// While Redis is unavailable each replica limits on its own with <c>PermitLimit / FallbackReplicaCount</c>;
    /// set it to the replica count so the replicas together stay within the shared limit.
    /// </summary>
    public int FallbackReplicaCount { get; set; } = 1;

    /// <summary>How long one Redis call may take before the request is decided by the in-process fallback.</summary>
    public int RedisTimeoutMs { get; set; } = 500;
}

/// <summary>At most <see cref="PermitLimit"/> requests in any <see cref="WindowSeconds"/>-second window.</summary>
public sealed class RateLimitPolicy
{
    public int PermitLimit { get; set; }

    public int WindowSeconds { get; set; }

    public TimeSpan Window => TimeSpan.FromSeconds(WindowSeconds);
}

public sealed class RateLimitingOptionsValidator : IValidateOptions<RateLimitingOptions>
{
    private static readonly string[] RequiredPolicies =
        [RateLimitingOptions.AnonymousPolicy, RateLimitingOptions.UserPolicy, RateLimitingOptions.AuthPolicy];

    public ValidateOptionsResult Validate(string? name, RateLimitingOptions options)
    {
        var failures = new List<string>();
        foreach (var required in RequiredPolicies)
        {
            if (!options.Policies.ContainsKey(required))
            {
                failures.Add($"RateLimiting:Policies:{required} is not configured.");
            }
        }

        foreach (var (policyName, policy) in options.Policies)
        {
            if (policy.PermitLimit < 1)
            {
                failures.Add($"RateLimiting:Policies:{policyName}:PermitLimit must be at least 1.");
            }

            if (policy.WindowSeconds is < 1 or > 86_400)
            {
                failures.Add($"RateLimiting:Policies:{policyName}:WindowSeconds must be between 1 and 86400.");
            }
        }

        if (options.AuthPaths.Any(path => string.IsNullOrWhiteSpace(path) || !path.StartsWith('/')))
        {
            failures.Add("RateLimiting:AuthPaths must be absolute paths starting with '/'.");
        }

        if (string.IsNullOrWhiteSpace(options.KeyPrefix))
        {
            failures.Add("RateLimiting:KeyPrefix must not be empty.");
        }

        if (options.FallbackReplicaCount < 1)
        {
            failures.Add("RateLimiting:FallbackReplicaCount must be at least 1.");
        }

        if (options.RedisTimeoutMs < 1)
        {
            failures.Add("RateLimiting:RedisTimeoutMs must be at least 1.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
