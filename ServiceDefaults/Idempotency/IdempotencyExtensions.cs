using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Shop.ServiceDefaults.Idempotency;

public static class IdempotencyExtensions
{
    /// <summary>Keys live in the service's own database (migration module "idempotency") and are kept 24 hours.</summary>
    public static IHostApplicationBuilder AddIdempotency(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<IdempotencyOptions>().BindConfiguration(IdempotencyOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddHostedService<IdempotencyKeyCleanup>();
        builder.Services.AddSingleton<UnfreedKeys>();
        builder.Services.AddHostedService(services => services.GetRequiredService<UnfreedKeys>());
        return builder;
    }

    /// <summary>After authentication: keys are scoped to the caller.</summary>
    public static IApplicationBuilder UseIdempotency(this IApplicationBuilder app) => app.UseMiddleware<IdempotencyMiddleware>();

    /// <summary>Every request must carry an Idempotency-Key (400 without one).</summary>
    public static TBuilder RequireIdempotencyKey<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new IdempotentEndpointMetadata(required: true));

    /// <summary>A request may carry an Idempotency-Key, and then gets the same guarantees; one without it runs as usual.</summary>
    public static TBuilder AcceptIdempotencyKey<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new IdempotentEndpointMetadata(required: false));

    private sealed class IdempotencyKeyCleanup(NpgsqlDataSource dataSource, ILogger<IdempotencyKeyCleanup> logger) : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            using var timer = new PeriodicTimer(TimeSpan.FromMinutes(10));
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await using var delete = dataSource.CreateCommand("DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'");
                    await delete.ExecuteNonQueryAsync(stoppingToken);
                }
                catch (NpgsqlException ex)
                {
                    logger.LogWarning(ex, "Removing old idempotency keys failed; trying again later");
                }
            }
        }
    }
}
