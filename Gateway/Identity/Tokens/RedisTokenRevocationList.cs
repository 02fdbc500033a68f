using System.Diagnostics.Metrics;
using Shop.ServiceDefaults.Security;
using StackExchange.Redis;

namespace Shop.Gateway.Identity.Tokens;

/// <summary>
/// Revoked access-token ids, shared by every Gateway replica through Redis and kept only until the token would
/// have expired anyway. If Redis cannot be asked, the check fails open (tokens live minutes) and is counted.
/// </summary>
public sealed class RedisTokenRevocationList(IConnectionMultiplexer redis, ILogger<RedisTokenRevocationList> logger) : ITokenRevocationList
{
    private static readonly Meter Meter = new("Shop.Gateway.Identity");
    private static readonly Counter<long> CheckFailures = Meter.CreateCounter<long>("shop.gateway.revocation_check_failures");

    public async Task<bool> IsRevokedAsync(string tokenId, CancellationToken cancellationToken)
    {
        try
        {
            return await redis.GetDatabase().KeyExistsAsync(Key(tokenId));
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            CheckFailures.Add(1);
            logger.LogWarning(ex, "Could not check token revocation; allowing the token");
            return false;
        }
    }

    public async Task RevokeAsync(string tokenId, DateTimeOffset expiresAt, DateTimeOffset now)
    {
        var ttl = expiresAt - now;
        if (ttl > TimeSpan.Zero)
        {
            await redis.GetDatabase().StringSetAsync(Key(tokenId), "1", ttl);
        }
    }

    private static string Key(string tokenId) => $"revoked:jti:{tokenId}";
}
