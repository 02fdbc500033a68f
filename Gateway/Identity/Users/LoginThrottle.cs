using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Shop.Gateway.Identity.Users;

/// <summary>
/// If Redis cannot be reached the throttle steps aside (logins stay possible; the per-IP rate limit still applies).
/// Counts failed logins per account (tenant + email, whether or not it exists, so the throttle reveals nothing)
/// in Redis, so every replica sees the same count.
/// </summary>
public sealed class LoginThrottle(IConnectionMultiplexer redis, IOptions<IdentityOptions> options, ILogger<LoginThrottle> logger)
{
    public async Task<TimeSpan?> BlockedForAsync(string tenant, string email)
    {
        try
        {
            return await BlockedForCoreAsync(tenant, email);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Login throttle unavailable; not applied");
            return null;
        }
    }

    public async Task RecordFailureAsync(string tenant, string email)
    {
        try
        {
            await RecordFailureCoreAsync(tenant, email);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Login throttle unavailable; failure not counted");
        }
    }

    public async Task ResetAsync(string tenant, string email)
    {
        try
        {
            await redis.GetDatabase().KeyDeleteAsync(Key(tenant, email));
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Login throttle unavailable; failures not reset");
        }
    }

    private async Task<TimeSpan?> BlockedForCoreAsync(string tenant, string email)
    {
        var database = redis.GetDatabase();
        var key = Key(tenant, email);
        var failures = (long?)await database.StringGetAsync(key) ?? 0;
        if (failures < options.Value.MaxFailedLogins)
        {
            return null;
        }

        return await database.KeyTimeToLiveAsync(key) ?? TimeSpan.FromMinutes(options.Value.FailedLoginWindowMinutes);
    }

    private async Task RecordFailureCoreAsync(string tenant, string email)
    {
        var database = redis.GetDatabase();
        var key = Key(tenant, email);
        if (await database.StringIncrementAsync(key) == 1)
        {
            await database.KeyExpireAsync(key, TimeSpan.FromMinutes(options.Value.FailedLoginWindowMinutes));
        }
    }

    private static string Key(string tenant, string email) => $"login-failures:{tenant}:{User.Normalize(email)}";
}
