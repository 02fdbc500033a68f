using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Shop.Gateway.Identity.Users;

/// <summary>
/// Counts failed logins per account (tenant + email, whether or not it exists, so the throttle reveals nothing)
/// in Redis, so every replica sees the same count.
/// </summary>
public sealed class LoginThrottle(IConnectionMultiplexer redis, IOptions<IdentityOptions> options)
{
    public async Task<TimeSpan?> BlockedForAsync(string tenant, string email)
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

    public async Task RecordFailureAsync(string tenant, string email)
    {
        var database = redis.GetDatabase();
        var key = Key(tenant, email);
        if (await database.StringIncrementAsync(key) == 1)
        {
            await database.KeyExpireAsync(key, TimeSpan.FromMinutes(options.Value.FailedLoginWindowMinutes));
        }
    }

    public Task ResetAsync(string tenant, string email) => redis.GetDatabase().KeyDeleteAsync(Key(tenant, email));

    private static string Key(string tenant, string email) => $"login-failures:{tenant}:{User.Normalize(email)}";
}
