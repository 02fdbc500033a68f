using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Shop.ServiceDefaults.Health;

namespace Shop.ServiceDefaults.Messaging;

public static class RabbitMqExtensions
{
    /// <summary>Registers the AMQP connection for <c>ConnectionStrings:{connectionName}</c> and a readiness check.</summary>
    public static IHostApplicationBuilder AddRabbitMQClient(this IHostApplicationBuilder builder, string connectionName)
    {
        var connectionString = builder.Configuration.GetConnectionString(connectionName)
            ?? throw new InvalidOperationException($"ConnectionStrings:{connectionName} is not configured.");
        builder.Services.AddSingleton(services => new RabbitMqConnectionProvider(
            connectionString,
            builder.Environment.ApplicationName,
            services.GetRequiredService<ILogger<RabbitMqConnectionProvider>>()));
        // Degraded, not unhealthy, when the broker is away: events wait in the outbox, so the service keeps
        // serving and must not be taken out of rotation for it.
        builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(
            connectionName,
            services => new RabbitMqHealthCheck(services.GetRequiredService<RabbitMqConnectionProvider>()),
            HealthStatus.Degraded,
            [HealthTags.Ready],
            TimeSpan.FromSeconds(5)));
        return builder;
    }

    /// <summary>Publishes this service's outbox. Safe to run on every replica (rows are claimed with SKIP LOCKED).</summary>
    public static IHostApplicationBuilder AddOutboxRelay<TContext>(this IHostApplicationBuilder builder) where TContext : DbContext
    {
        builder.Services.AddHostedService<OutboxRelay<TContext>>();
        return builder;
    }

    /// <summary>Consumes a durable queue bound to a producer's exchange; handlers are <see cref="IEventHandler"/>s.</summary>
    public static IHostApplicationBuilder AddEventConsumer<TContext>(this IHostApplicationBuilder builder, ConsumerOptions options)
        where TContext : DbContext
    {
        // Ready only once the queue is declared and consumed: before that, published events would have no queue to land in.
        var readiness = new ConsumerReadiness(options.Queue);
        builder.Services.AddSingleton<IHostedService>(services => ActivatorUtilities.CreateInstance<EventConsumer<TContext>>(services, options, readiness));
        builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(
            $"consumer:{options.Queue}", readiness, HealthStatus.Unhealthy, [HealthTags.Ready]));
        return builder;
    }

    private sealed class RabbitMqHealthCheck(RabbitMqConnectionProvider provider) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                var connection = await provider.GetConnectionAsync(cancellationToken);
                return connection.IsOpen ? HealthCheckResult.Healthy() : new HealthCheckResult(context.Registration.FailureStatus, "The connection is recovering.");
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                return new HealthCheckResult(context.Registration.FailureStatus, ex.Message, ex);
            }
        }
    }
}

internal sealed class ConsumerReadiness(string queue) : IHealthCheck
{
    private volatile bool _consuming;

    public bool IsConsuming
    {
        get => _consuming;
        set => _consuming = value;
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(_consuming ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy($"Not consuming {queue} yet."));
}

/// <param name="Consumer">Name recorded in the inbox; one per consuming service and event family.</param>
/// <param name="Queue">Durable queue; its dead-letter queue is <c>{Queue}.dlq</c>.</param>
/// <param name="Exchange">The producer's topic exchange.</param>
/// <param name="RoutingKeys">Bindings (event types or patterns such as <c>order.*</c>).</param>
public sealed record ConsumerOptions(string Consumer, string Queue, string Exchange, IReadOnlyList<string> RoutingKeys)
{
    public ushort Prefetch { get; init; } = 16;
    public int DeliveryLimit { get; init; } = 5;
}
