using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Shop.ServiceDefaults.Health;
using StackExchange.Redis;

namespace Shop.ServiceDefaults.Data;

public static class RedisExtensions
{
    /// <summary>
    /// Registers a multiplexer for <c>ConnectionStrings:{connectionName}</c> (Aspire's <c>host:port,password=…</c>
    /// format) and a readiness check that PINGs. It connects in the background and keeps retrying.
    /// Redis down makes the service degraded, not unready: every user of Redis here copes without it (product reads
    /// fall back to the database, the Gateway's revocation check and rate limiter fail open), so a replica must stay in
    /// rotation. Marked unready, every replica at once would be taken out, and a Redis outage would become an outage.
    /// </summary>
    public static IHostApplicationBuilder AddRedisClient(this IHostApplicationBuilder builder, string connectionName)
    {
        var connectionString = builder.Configuration.GetConnectionString(connectionName)
            ?? throw new InvalidOperationException($"ConnectionStrings:{connectionName} is not configured.");
        builder.Services.AddSingleton<IConnectionMultiplexer>(_ =>
        {
            var options = ConfigurationOptions.Parse(connectionString);
            options.AbortOnConnectFail = false;
            options.ClientName = builder.Environment.ApplicationName;
            var multiplexer = ConnectionMultiplexer.Connect(options);
            // With 1.x's default, every awaited reply resumes its caller on one completion thread, one after another:
            // the rest of each request (after its cache read, rate-limit check…) ran there, serialized across the
            // whole process. Nothing here depends on replies resuming in order, so they go to the thread pool.
            multiplexer.PreserveAsyncOrder = false;
            return multiplexer;
        });
        builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(
            connectionName,
            services => new RedisHealthCheck(services.GetRequiredService<IConnectionMultiplexer>()),
            HealthStatus.Degraded,
            [HealthTags.Ready],
            TimeSpan.FromSeconds(5)));
        return builder;
    }

    /// <summary>
    /// The reply of a Redis command within <paramref name="budget"/>, else a <see cref="TimeoutException"/>. In
    /// StackExchange.Redis 1.x an awaited command has no timeout of its own: a server that stalls without closing the
    /// connection (paused, swapping, a network that drops packets) would hold the caller for as long as that lasts. The
    /// abandoned command is observed, so its late failure is not reported as an unobserved exception.
    /// </summary>
    public static async Task<T> WithinAsync<T>(this Task<T> call, TimeSpan budget, TimeProvider clock, CancellationToken cancellationToken = default)
    {
        try
        {
            return await call.WaitAsync(budget, clock, cancellationToken);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            // Observed whatever its state: one that fails just after the wait gave up is observed too.
            _ = call.ContinueWith(static task => _ = task.Exception, CancellationToken.None,
                TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            throw;
        }
    }

    /// <summary>
    /// Redis' state in the readiness report. A Redis that stalls without closing its connections never answers the PING:
    /// the check gives up after a second, well within the probes' own time (3 s for the AppHost's), or the whole report
    /// would wait for it and the probe take the replica for unready, although Redis is only a degraded dependency.
    /// </summary>
    private sealed class RedisHealthCheck(IConnectionMultiplexer redis) : IHealthCheck
    {
        private static readonly TimeSpan Budget = TimeSpan.FromSeconds(1);

        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                var latency = await redis.GetDatabase().PingAsync().WithinAsync(Budget, TimeProvider.System, cancellationToken);
                return HealthCheckResult.Healthy($"PING {latency.TotalMilliseconds:F1} ms");
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                return new HealthCheckResult(context.Registration.FailureStatus, ex.Message, ex);
            }
        }
    }
}
