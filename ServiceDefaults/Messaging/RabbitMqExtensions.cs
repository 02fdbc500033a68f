using System.Globalization;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Shop.ServiceDefaults.Health;
using Shop.ServiceDefaults.Messaging.DeadLetters;

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

    /// <summary>
    /// Publishes this service's outbox. Safe to run on every replica (rows are claimed with SKIP LOCKED). Before the
    /// first publish to an exchange, the queues that <paramref name="subscriptions"/> (by default
    /// <see cref="Subscriptions.All"/>) bind to it are declared, so nothing is published into an exchange with no queue.
    /// </summary>
    public static IHostApplicationBuilder AddOutboxRelay<TContext>(this IHostApplicationBuilder builder, SubscriptionCatalog? subscriptions = null)
        where TContext : DbContext
    {
        builder.Services.AddSingleton<IHostedService>(services =>
            ActivatorUtilities.CreateInstance<OutboxRelay<TContext>>(services, subscriptions ?? Subscriptions.All));
        return builder;
    }

    /// <summary>
    /// Consumes a durable queue bound to a producer's exchange; handlers are <see cref="IEventHandler"/>s. Failed
    /// messages go through the retry queues of <see cref="ConsumerOptions.RetryDelays"/>, then to <c>{Queue}.dlq</c>.
    /// Configuration overrides the retry delays: <c>Messaging:Consumers:{Consumer}:RetryDelays</c>, else
    /// <c>Messaging:RetryDelays</c> (a list, or one comma-separated value, of TimeSpans such as <c>00:00:05</c>).
    /// </summary>
    public static IHostApplicationBuilder AddEventConsumer<TContext>(this IHostApplicationBuilder builder, ConsumerOptions options)
        where TContext : DbContext
    {
        if (Subscriptions.All.Subscriptions.FirstOrDefault(s => s.Queue == options.Queue) is { } listed
            && (listed.Exchange != options.Exchange || listed.DeliveryLimit != options.DeliveryLimit || !listed.RoutingKeys.SequenceEqual(options.RoutingKeys)))
        {
            // Publishers declare this queue as the catalog has it: a consumer declaring it otherwise would be refused by the broker.
            throw new InvalidOperationException($"Queue {options.Queue} is listed in Subscriptions with another exchange, bindings or delivery limit.");
        }

        options = options with { RetryDelays = ConfiguredRetryDelays(builder.Configuration, options.Consumer) ?? options.RetryDelays };
        // Ready only once the queue is declared and consumed: before that, published events would have no queue to land in.
        var readiness = new ConsumerReadiness(options.Queue);
        builder.Services.AddSingleton<IHostedService>(services => ActivatorUtilities.CreateInstance<EventConsumer<TContext>>(services, options, readiness));
        builder.Services.AddSingleton(new DeadLetterQueueRegistration(options.Queue, options.DeadLetterQueue));
        builder.Services.TryAddSingleton<DeadLetterStore>();
        builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(
            $"consumer:{options.Queue}", readiness, HealthStatus.Unhealthy, [HealthTags.Ready]));
        return builder;
    }

    internal static IReadOnlyList<TimeSpan>? ConfiguredRetryDelays(IConfiguration configuration, string consumer)
    {
        foreach (var section in new[] { configuration.GetSection($"Messaging:Consumers:{consumer}:RetryDelays"), configuration.GetSection("Messaging:RetryDelays") })
        {
            var values = section.Value is { } single
                ? single.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                : section.GetChildren().Select(c => c.Value ?? "").ToArray();
            if (values.Length > 0)
            {
                return values.Select(v => TimeSpan.TryParse(v, CultureInfo.InvariantCulture, out var delay) && delay > TimeSpan.Zero
                    ? delay
                    : throw new InvalidOperationException($"{section.Path}: '{v}' is not a positive TimeSpan (such as 00:00:05).")).ToList();
            }
        }

        return null;
    }

    /// <summary>
    /// The broker's state in the readiness report. Before the first connection the check would make it, and a broker that
    /// accepts the connection and stalls holds that for the handshake's 10 s: the check gives up after a second, within the
    /// probes' own time (3 s for the AppHost's), or the probe would take the replica for unready, although the broker is
    /// only a degraded dependency. The connection goes on being made for the next check.
    /// </summary>
    internal sealed class RabbitMqHealthCheck(RabbitMqConnectionProvider provider) : IHealthCheck
    {
        private static readonly TimeSpan Budget = TimeSpan.FromSeconds(1);

        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                var connection = await provider.GetConnectionAsync(cancellationToken).WaitAsync(Budget, cancellationToken);
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
/// <param name="Queue">Durable queue; its retry queues are <c>{Queue}.retry.N</c> and its dead-letter queue <c>{Queue}.dlq</c>.</param>
/// <param name="Exchange">The producer's topic exchange.</param>
/// <param name="RoutingKeys">Bindings (event types or patterns such as <c>order.*</c>).</param>
public sealed record ConsumerOptions(string Consumer, string Queue, string Exchange, IReadOnlyList<string> RoutingKeys)
{
    public static readonly IReadOnlyList<TimeSpan> DefaultRetryDelays = [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(25)];

    public ushort Prefetch { get; init; } = 16;

    /// <summary>
    /// The broker's limit on redeliveries of one message (nack-requeue, a consumer that died holding it) before
    /// it dead-letters it: a safety net for messages that crash the process, beside the retry queues.
    /// </summary>
    public int DeliveryLimit { get; init; } = 5;

    /// <summary>
    /// How long a failed message waits before each retry; after the last retry fails it is dead-lettered. The
    /// retry queues are declared with these delays as their TTL, so changing them on an existing broker needs
    /// the old <c>{Queue}.retry.N</c> queues deleted first.
    /// </summary>
    public IReadOnlyList<TimeSpan> RetryDelays { get; init; } = DefaultRetryDelays;

    /// <summary>
    /// Remember the highest <see cref="EventEnvelope.AggregateVersion"/> applied per aggregate and acknowledge,
    /// without effect, an event whose version is not higher. Only for consumers whose producer gives every
    /// event of an aggregate a version of its own.
    /// </summary>
    public bool IgnoreStaleAggregateVersions { get; init; }

    public string DeadLetterQueue => RetryPlan.DeadLetterQueue;

    public RetryPlan RetryPlan => new(Queue, RetryDelays);
}

/// <summary>A dead-letter queue of this service and the queue its messages are replayed to.</summary>
public sealed record DeadLetterQueueRegistration(string Queue, string DeadLetterQueue);
