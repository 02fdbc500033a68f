using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using Shop.ServiceDefaults.Data;
using StackExchange.Redis;

namespace Shop.Gateway.RateLimiting;

/// <summary>
/// A sliding-window log per partition in one Redis sorted set, shared by every replica: one script per request
/// trims, counts and admits atomically on Redis' clock, so no window ever holds more than the limit. When Redis
/// fails or is slow the request fails open to <see cref="LocalSlidingWindowLimiter"/>.
/// </summary>
public sealed class RedisSlidingWindowLimiter
{
    // Scores are whole milliseconds of Redis' TIME (13 digits, exact through Lua's %.14g number formatting). An
    // entry is kept until now > score + window, so two admissions one full window apart never share a window
    // even when their real times lie within the same millisecond.
    // Returns { allowed (1/0), remaining, ms until the oldest entry leaves the window }.
    private const string Script = """
        local limit = tonumber(ARGV[1])
        local window = tonumber(ARGV[2])
        local time = redis.call('TIME')
        local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window - 1)
        local count = redis.call('ZCARD', KEYS[1])
        local allowed = 0
        if count < limit then
            redis.call('ZADD', KEYS[1], now, ARGV[3])
            count = count + 1
            allowed = 1
        end
        local resetAfter = 0
        local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
        if #oldest == 2 then
            resetAfter = tonumber(oldest[2]) + window + 1 - now
        end
        redis.call('PEXPIRE', KEYS[1], window + 1)
        return { allowed, math.max(limit - count, 0), resetAfter }
        """;

    private static readonly TimeSpan WarningInterval = TimeSpan.FromSeconds(30);
    private const long NeverWarned = long.MinValue;

    private readonly IConnectionMultiplexer _redis;
    private readonly LocalSlidingWindowLimiter _fallback;
    private readonly RateLimitingOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<RedisSlidingWindowLimiter> _logger;
    private readonly Counter<long> _redisFailures;
    private int _degraded;
    private long _lastWarning = NeverWarned;

    public RedisSlidingWindowLimiter(
        IConnectionMultiplexer redis,
        LocalSlidingWindowLimiter fallback,
        IOptions<RateLimitingOptions> options,
        IMeterFactory meterFactory,
        TimeProvider timeProvider,
        ILogger<RedisSlidingWindowLimiter> logger)
    {
        _redis = redis;
        _fallback = fallback;
        _options = options.Value;
        _timeProvider = timeProvider;
        _logger = logger;

        var meter = meterFactory.Create(RateLimitingExtensions.MeterName);
        _redisFailures = meter.CreateCounter<long>(
            "shop.gateway.rate_limit.redis_failures", "{failure}", "Redis calls of the rate limiter that failed or timed out.");
        meter.CreateObservableGauge(
            "shop.gateway.rate_limit.degraded", () => Volatile.Read(ref _degraded), description: "1 while the last Redis call of the rate limiter failed.");
    }

    public async Task<RateLimitDecision> AcquireAsync(string policy, string partition, CancellationToken cancellationToken)
    {
        if (!_options.Policies.TryGetValue(policy, out var limits))
        {
            throw new ArgumentException($"Unknown rate limit policy '{policy}'.", nameof(policy));
        }

        try
        {
            var result = await EvaluateAsync($"{_options.KeyPrefix}:{policy}:{partition}", limits, cancellationToken);
            var values = (RedisResult[])result;
            MarkHealthy();
            return new RateLimitDecision(
                Allowed: (long)values[0] == 1,
                Limit: limits.PermitLimit,
                Remaining: (int)(long)values[1],
                ResetAfter: TimeSpan.FromMilliseconds((long)values[2]),
                Degraded: false);
        }
        catch (Exception ex) when (ex is RedisConnectionException or RedisTimeoutException or RedisServerException or TimeoutException)
        {
            MarkDegraded(ex);
            var share = Math.Max(1, limits.PermitLimit / _options.FallbackReplicaCount);
            return _fallback.TryAcquire($"{policy}:{partition}", share, limits.Window) with { Degraded = true };
        }
    }

    private Task<RedisResult> EvaluateAsync(string key, RateLimitPolicy limits, CancellationToken cancellationToken) =>
        _redis.GetDatabase()
            .ScriptEvaluateAsync(Script, [key], [limits.PermitLimit, limits.WindowSeconds * 1000L, Guid.NewGuid().ToString("N")])
            .WithinAsync(TimeSpan.FromMilliseconds(_options.RedisTimeoutMs), _timeProvider, cancellationToken);

    private void MarkHealthy()
    {
        if (Interlocked.Exchange(ref _degraded, 0) == 1)
        {
            _logger.LogInformation("Redis answers again: rate limits are shared across replicas again");
        }
    }

    private void MarkDegraded(Exception exception)
    {
        Interlocked.Exchange(ref _degraded, 1);
        _redisFailures.Add(1, new KeyValuePair<string, object?>("error.type", exception.GetType().Name));

        var now = _timeProvider.GetTimestamp();
        var last = Interlocked.Read(ref _lastWarning);
        var due = last == NeverWarned || _timeProvider.GetElapsedTime(last, now) >= WarningInterval;
        if (due && Interlocked.CompareExchange(ref _lastWarning, now, last) == last)
        {
            _logger.LogWarning(
                exception,
                "Redis is unavailable to the rate limiter: failing open to the in-process limiter at 1/{FallbackReplicaCount} of each limit per replica",
                _options.FallbackReplicaCount);
        }
    }
}
