using Microsoft.Extensions.Options;
using Shop.ServiceDefaults.Data;
using StackExchange.Redis;

namespace Shop.Gateway.Identity.Users;

/// <summary>
/// Counts login attempts per account (tenant + email, whether or not it exists, so the throttle reveals nothing) in
/// Redis, so every replica sees the same count. An attempt is counted when it begins, in one script with the check, so
/// that guesses sent at once cannot all pass a check made before any of them was counted; a successful login clears
/// the count. If Redis cannot be reached, or does not answer within <see cref="IdentityOptions.RedisTimeoutMilliseconds"/>,
/// the throttle steps aside (logins stay possible; the per-IP rate limit still applies).
/// </summary>
public sealed class LoginThrottle(IConnectionMultiplexer redis, IOptions<IdentityOptions> options, TimeProvider clock, ILogger<LoginThrottle> logger)
{
    // KEYS[1] the account's counter; ARGV[1] attempts allowed in the window, ARGV[2] the window in ms. Answers 0 and the
    // counter's count when the attempt may go on, or -1 and the ms left when the account is locked. The counter gets its
    // expiry in the same script as its first count, so a lost reply cannot leave a counter that never expires.
    private const string Script = """
        local count = tonumber(redis.call('GET', KEYS[1]) or '0')
        if count >= tonumber(ARGV[1]) then
          local left = redis.call('PTTL', KEYS[1])
          if left < 0 then
            redis.call('PEXPIRE', KEYS[1], ARGV[2])
            left = tonumber(ARGV[2])
          end
          return {-1, left}
        end
        count = redis.call('INCR', KEYS[1])
        if redis.call('PTTL', KEYS[1]) < 0 then
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        return {0, count}
        """;

    /// <summary>Counts an attempt at the account, or says how long it stays locked when its attempts are used up.</summary>
    public async Task<TimeSpan?> BeginAttemptAsync(string tenant, string email)
    {
        try
        {
            var window = TimeSpan.FromMinutes(options.Value.FailedLoginWindowMinutes);
            var result = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(Script, [Key(tenant, email)],
                [options.Value.MaxFailedLogins, (long)window.TotalMilliseconds]).WithinAsync(Budget, clock))!;
            return (long)result[0] < 0 ? TimeSpan.FromMilliseconds((long)result[1]) : null;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Login throttle unavailable; not applied");
            return null;
        }
    }

    /// <summary>A successful login: the account's earlier attempts no longer count.</summary>
    public async Task ResetAsync(string tenant, string email)
    {
        try
        {
            await redis.GetDatabase().KeyDeleteAsync(Key(tenant, email)).WithinAsync(Budget, clock);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Login throttle unavailable; failures not reset");
        }
    }

    private TimeSpan Budget => TimeSpan.FromMilliseconds(options.Value.RedisTimeoutMilliseconds);

    private static string Key(string tenant, string email) => $"login-failures:{tenant}:{User.Normalize(email)}";
}
