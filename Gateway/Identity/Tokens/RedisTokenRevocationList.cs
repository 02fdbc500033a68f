using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Security;
using StackExchange.Redis;

namespace Shop.Gateway.Identity.Tokens;

/// <summary>
/// Revoked access-token ids, shared by every Gateway replica through Redis and kept only until the token would
/// have expired anyway (with the validators' clock skew). Each replica also holds them in memory (<see cref="RevokedTokens"/>) and answers from there
/// while its lease on the revocation channel holds; otherwise it asks Redis. If Redis cannot be asked, the check
/// fails open (tokens live minutes) and is counted.
/// </summary>
public sealed class RedisTokenRevocationList(IConnectionMultiplexer redis, RevokedTokens revoked, RevocationSubscription subscription,
    IOptions<TokenOptions> options, IOptions<IdentityOptions> identity, TimeProvider clock, ILogger<RedisTokenRevocationList> logger)
    : ITokenRevocationList
{
    public const string KeyPrefix = "revoked:jti:";

    // The key and the message in one step: a replica that loads the keys when it subscribes, and hears the messages
    // after, misses neither.
    private const string RevokeScript = """
        redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
        redis.call('PUBLISH', ARGV[2], ARGV[3])
        return 1
        """;

    private static readonly Meter Meter = new("Shop.Gateway.Identity");
    private static readonly Counter<long> CheckFailures = Meter.CreateCounter<long>("shop.gateway.revocation_check_failures");

    public async Task<bool> IsRevokedAsync(string tokenId, CancellationToken cancellationToken)
    {
        if (revoked.IsRevoked(tokenId) is { } known)
        {
            return known;
        }

        try
        {
            return await redis.GetDatabase().KeyExistsAsync(KeyPrefix + tokenId).WithinAsync(Budget, clock, cancellationToken);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            CheckFailures.Add(1);
            logger.LogWarning(ex, "Could not check token revocation; allowing the token");
            return false;
        }
    }

    private TimeSpan Budget => TimeSpan.FromMilliseconds(identity.Value.RedisTimeoutMilliseconds);

    /// <summary>
    /// Returns once no replica accepts the token: each has heard of it, or has stopped trusting its memory. Throws
    /// (<see cref="RedisException"/>, <see cref="TimeoutException"/>) when Redis cannot take the revocation in time.
    /// </summary>
    public async Task RevokeAsync(string tokenId, DateTimeOffset expiresAt, DateTimeOffset now)
    {
        var remaining = RevokedTokens.KeepFor(expiresAt, now, TimeSpan.FromSeconds(options.Value.ClockSkewSeconds));
        if (remaining <= TimeSpan.Zero)
        {
            return;
        }

        var milliseconds = Math.Max(1, (long)remaining.TotalMilliseconds);
        await redis.GetDatabase().ScriptEvaluateAsync(RevokeScript, [KeyPrefix + tokenId],
            [milliseconds, RevocationSubscription.Channel, RevocationSubscription.Message(tokenId, remaining)]).WithinAsync(Budget, clock);
        await subscription.WaitForEveryReplicaAsync();
    }
}
