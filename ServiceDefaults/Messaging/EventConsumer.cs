using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Shop.ServiceDefaults.Correlation;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Errors;
using Shop.ServiceDefaults.Messaging.DeadLetters;
using Shop.ServiceDefaults.Messaging.Schemas;
using Shop.ServiceDefaults.Telemetry;

namespace Shop.ServiceDefaults.Messaging;

/// <summary>
/// Consumes one durable quorum queue with manual acks. Each event is checked against its schema, then handled
/// in a transaction that also records it in the inbox, and acked only after that commits: a redelivered event
/// is recognised and acked without running again. When the handler fails, the message is republished (publisher
/// confirms) to the retry queue of its attempt, whose TTL sends it back to the queue later; after the last retry
/// it goes to <c>{queue}.dlq</c> with the reason. A message that is unreadable or breaks its schema goes there at
/// once. A handler that could not reach its database (or another dependency) made no attempt: the message waits
/// in the retry queues, as long as it takes, without using up its retries. The broker's delivery limit stays as
/// the safety net for a message that crashes the process.
/// </summary>
internal sealed class EventConsumer<TContext>(
    ConsumerOptions options,
    ConsumerReadiness readiness,
    IServiceProvider services,
    IServiceScopeFactory scopes,
    RabbitMqConnectionProvider connections,
    TimeProvider clock,
    ILogger<EventConsumer<TContext>> logger) : BackgroundService where TContext : DbContext
{
    private readonly RetryPlan _plan = options.RetryPlan;
    private IChannel? _channel;
    private IChannel? _publisher;

    /// <summary>How often a running consumer checks that it still consumes, and how many failed checks in a row rebuild it.</summary>
    private static readonly TimeSpan WatchInterval = TimeSpan.FromSeconds(2);

    private const int FailedChecksBeforeRebuild = 3;

    /// <summary>How long moving a message to a retry or dead-letter queue waits for the broker's confirm.</summary>
    private static readonly TimeSpan ForwardConfirmTimeout = TimeSpan.FromSeconds(15);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Handlers and the inbox need the current schema: a message taken before it exists would fail for nothing.
        await services.WaitForMigrationsAsync<TContext>(stoppingToken);
        while (!stoppingToken.IsCancellationRequested)
        {
            var (connection, consumer) = await StartConsumingAsync(stoppingToken);
            await WatchAsync(connection, consumer, stoppingToken);
        }
    }

    private async Task<(IConnection Connection, AsyncEventingBasicConsumer Consumer)> StartConsumingAsync(CancellationToken stoppingToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var publishing = await connections.GetConnectionAsync(RabbitMqConnectionRole.Publishing, stoppingToken);
                var connection = await connections.GetConnectionAsync(RabbitMqConnectionRole.Consuming, stoppingToken);
                _publisher = await publishing.CreateChannelAsync(
                    new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), stoppingToken);
                _channel = await connection.CreateChannelAsync(cancellationToken: stoppingToken);
                await DeclareTopologyAsync(_channel, stoppingToken);
                await DeadLetterDirectory.RegisterAsync(_publisher, options.Queue, options.DeadLetterQueue, stoppingToken);
                await _channel.BasicQosAsync(0, options.Prefetch, false, stoppingToken);

                var consumer = new AsyncEventingBasicConsumer(_channel);
                // Acks go to the channel the delivery came on, which may no longer be the current one after a rebuild.
                var channel = _channel;
                consumer.ReceivedAsync += (_, delivery) => OnReceivedAsync(channel, delivery, stoppingToken);
                await _channel.BasicConsumeAsync(options.Queue, autoAck: false, consumer, stoppingToken);
                readiness.IsConsuming = true;
                logger.LogInformation("Consuming {Queue} ({Bindings}); retries after {RetryDelays}", options.Queue,
                    string.Join(", ", options.RoutingKeys), string.Join(", ", options.RetryDelays));
                return (connection, consumer);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning(ex, "Could not start consuming {Queue} (attempt {Attempt}); retrying", options.Queue, attempt);
                await CloseQuietlyAsync();
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(2000, 250 * attempt)), clock, stoppingToken);
            }
        }
    }

    /// <summary>
    /// Returns when the consumer has stopped for good while its connection is up: its channel was closed by the broker
    /// (a channel error, a delivery past the broker's consumer timeout), or the broker cancelled it (its queue was
    /// deleted). The client's recovery brings back channels and consumers only after a lost connection, so without this
    /// the replica would consume nothing until restarted, and still say it was ready. While the connection is down,
    /// recovery is left to the client.
    /// </summary>
    private async Task WatchAsync(IConnection connection, AsyncEventingBasicConsumer consumer, CancellationToken stoppingToken)
    {
        var failedChecks = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            await Task.Delay(WatchInterval, clock, stoppingToken);
            var consuming = !connection.IsOpen || (consumer.Channel.IsOpen && consumer.IsRunning);
            failedChecks = consuming ? 0 : failedChecks + 1;
            if (failedChecks < FailedChecksBeforeRebuild)
            {
                continue;
            }

            readiness.IsConsuming = false;
            logger.LogWarning("Stopped consuming {Queue} ({Reason}); consuming again on new channels", options.Queue,
                consumer.ShutdownReason?.ReplyText ?? (consumer.Channel.IsOpen ? "the broker cancelled the consumer" : "its channel closed"));
            await CloseQuietlyAsync();
            return;
        }
    }

    private async Task CloseQuietlyAsync()
    {
        try
        {
            await CloseAsync(CancellationToken.None);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            logger.LogDebug(ex, "Closing the channels of {Queue} failed; they are dropped", options.Queue);
            (_channel, _publisher) = (null, null);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await CloseAsync(cancellationToken);
    }

    private async Task CloseAsync(CancellationToken cancellationToken)
    {
        foreach (var channel in new[] { _channel, _publisher })
        {
            if (channel is { IsOpen: true })
            {
                await channel.CloseAsync(cancellationToken);
            }

            channel?.Dispose();
        }

        (_channel, _publisher) = (null, null);
    }

    private async Task DeclareTopologyAsync(IChannel channel, CancellationToken cancellationToken)
    {
        await SubscriptionTopology.DeclareQueueAsync(channel, options, cancellationToken);
        await SubscriptionTopology.DeclareRetryQueuesAsync(channel, options, cancellationToken);
    }

    private async Task OnReceivedAsync(IChannel channel, BasicDeliverEventArgs delivery, CancellationToken stoppingToken)
    {
        var retries = MessageHeaders.RetriesOf(delivery.BasicProperties.Headers);
        var messageType = delivery.BasicProperties.Type ?? delivery.RoutingKey;
        EventEnvelope? envelope;
        try
        {
            envelope = JsonSerializer.Deserialize<EventEnvelope>(delivery.Body.Span, EventEnvelope.JsonOptions)
                ?? throw new JsonException("The message is JSON null.");
        }
        catch (JsonException ex)
        {
            logger.LogError(ex, "Unreadable message {MessageId} on {Queue}; dead-lettering it", delivery.BasicProperties.MessageId, options.Queue);
            await DeadLetterAsync(channel, delivery, messageType, retries + 1, ex.GetType().FullName!, $"Unreadable message: {ex.Message}", stoppingToken);
            return;
        }

        var parentId = delivery.BasicProperties.Headers?.TryGetValue("traceparent", out var header) == true && header is byte[] bytes
            ? Encoding.UTF8.GetString(bytes)
            : envelope.TraceParent;
        ActivityContext.TryParse(parentId, envelope.TraceState, out var parent);
        using var activity = ShopDiagnostics.ActivitySource.StartActivity($"{envelope.EventType} process", ActivityKind.Consumer, parent);
        activity?.SetTag("messaging.system", "rabbitmq");
        activity?.SetTag("messaging.destination.name", options.Queue);
        activity?.SetTag("messaging.message.id", envelope.EventId.ToString());
        activity?.SetTag("messaging.rabbitmq.attempt", retries + 1);
        CorrelationContext.Current = envelope.CorrelationId;
        using var logScope = logger.BeginScope(new Dictionary<string, object?>
        {
            [CorrelationContext.LogScopeKey] = envelope.CorrelationId,
            ["EventId"] = envelope.EventId,
            ["EventType"] = envelope.EventType,
        });

        try
        {
            await HandleOnceAsync(envelope, stoppingToken);
        }
        catch (EventValidationException ex)
        {
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            logger.LogError("Event {EventType} v{EventVersion} {EventId} breaks its contract; dead-lettering it without retries: {Errors}",
                envelope.EventType, envelope.EventVersion, envelope.EventId, string.Join("; ", ex.Errors));
            await DeadLetterAsync(channel, delivery, envelope.EventType, retries + 1, ex.GetType().FullName!, ex.Message, stoppingToken);
            return;
        }
        catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
        {
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            await RetryOrDeadLetterAsync(channel, delivery, envelope.EventType, retries, ex, stoppingToken);
            return;
        }

        // Outside the try: an ack that fails after the commit must not send the message to a retry; the
        // redelivery that follows is recognised by the inbox.
        await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false, stoppingToken);
        MessagingMetrics.RecordConsumed(options.Queue, envelope.EventType);
    }

    private async Task RetryOrDeadLetterAsync(IChannel channel, BasicDeliverEventArgs delivery, string eventType, int retries, Exception failure, CancellationToken cancellationToken)
    {
        var headers = delivery.BasicProperties.Headers;
        var outagesSoFar = MessageHeaders.OutagesOf(headers);
        if (DependencyFailure.IsOutage(failure) && _plan.AfterOutage(outagesSoFar, retries) is { } wait)
        {
            // Whatever the handler meant to do was not done: no attempt is counted, so an outage longer than the
            // retry schedule does not dead-letter the events that arrive during it.
            logger.LogWarning("Handling {EventType} could not reach a dependency ({Failure}); not counted as an attempt, waiting {Delay} in {RetryQueue} ({Outages} so far)",
                eventType, MessageHeaders.Describe(failure), _plan.DelayAfterOutage(outagesSoFar), wait.Queue, outagesSoFar + 1);
            if (await ForwardAsync(channel, delivery, wait.Queue, MessageHeaders.ForOutage(headers, outagesSoFar + 1), cancellationToken))
            {
                MessagingMetrics.RecordDeferred(options.Queue, eventType);
            }

            return;
        }

        var route = _plan.AfterFailure(retries);
        if (route.IsDeadLetter)
        {
            logger.LogError(failure, "Handling {EventType} failed on attempt {Attempts}, the last; dead-lettering it to {DeadLetterQueue}",
                eventType, route.Attempts, route.Queue);
            await DeadLetterAsync(channel, delivery, eventType, route.Attempts, failure.GetType().FullName!, MessageHeaders.Describe(failure), cancellationToken);
            return;
        }

        logger.LogWarning(failure, "Handling {EventType} failed on attempt {Attempts}; retrying in {Delay} through {RetryQueue}",
            eventType, route.Attempts, options.RetryDelays[route.Retries - 1], route.Queue);
        if (await ForwardAsync(channel, delivery, route.Queue, MessageHeaders.ForRetry(headers, route.Retries), cancellationToken))
        {
            MessagingMetrics.RecordRetried(options.Queue, eventType);
        }
    }

    private async Task DeadLetterAsync(IChannel channel, BasicDeliverEventArgs delivery, string? eventType, int attempts, string exceptionType, string reason,
        CancellationToken cancellationToken)
    {
        var headers = MessageHeaders.ForDeadLetter(delivery.BasicProperties.Headers, options.Queue, attempts, exceptionType, reason, clock.GetUtcNow());
        if (await ForwardAsync(channel, delivery, _plan.DeadLetterQueue, headers, cancellationToken))
        {
            MessagingMetrics.RecordDeadLettered(options.Queue, eventType);
        }
    }

    /// <summary>
    /// Publishes a copy (same body and properties, new headers) and acks the original only once the broker has
    /// confirmed the copy. If that fails, the original is requeued: the broker counts the delivery.
    /// </summary>
    private async Task<bool> ForwardAsync(IChannel channel, BasicDeliverEventArgs delivery, string queue, Dictionary<string, object?> headers, CancellationToken cancellationToken)
    {
        try
        {
            var properties = new BasicProperties(delivery.BasicProperties) { Headers = headers, DeliveryMode = DeliveryModes.Persistent };
            // Mandatory: a queue that does not exist is an error (PublishException), not a silent drop. The confirm is
            // awaited for a bounded time: messages are handled one at a time, so one that never came would stop the queue.
            using var confirmed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            confirmed.CancelAfter(ForwardConfirmTimeout);
            await _publisher!.BasicPublishAsync("", queue, mandatory: true, properties, delivery.Body, confirmed.Token);
            await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false, cancellationToken);
            return true;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            logger.LogError(ex, "Could not move message {MessageId} to {TargetQueue}; requeueing it", delivery.BasicProperties.MessageId, queue);
            // A short pause so a failing broker is not hammered.
            await Task.Delay(TimeSpan.FromMilliseconds(500), clock, cancellationToken);
            if (channel.IsOpen)
            {
                await channel.BasicNackAsync(delivery.DeliveryTag, multiple: false, requeue: true, cancellationToken);
            }

            return false;
        }
    }

    private async Task HandleOnceAsync(EventEnvelope envelope, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<TContext>();
        var handler = scope.ServiceProvider.GetServices<IEventHandler>()
            .FirstOrDefault(h => h.EventType == envelope.EventType && h.EventVersion == envelope.EventVersion);
        if (handler is null)
        {
            logger.LogDebug("No handler for {EventType} v{EventVersion}; acknowledged", envelope.EventType, envelope.EventVersion);
            return;
        }

        EventSchemas.EnsureValid(envelope);

        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var seen = await db.Set<InboxMessage>().AnyAsync(m => m.Consumer == options.Consumer && m.EventId == envelope.EventId, cancellationToken);
        if (seen)
        {
            logger.LogInformation("Event {EventId} was already processed; acknowledged without effect", envelope.EventId);
            return;
        }

        if (options.IgnoreStaleAggregateVersions && handler.DropsStaleVersions && !await AdvanceAggregateVersionAsync(db, envelope, cancellationToken))
        {
            logger.LogInformation("Event {EventId} is for version {AggregateVersion} of {AggregateId}, not newer than the one applied; acknowledged without effect",
                envelope.EventId, envelope.AggregateVersion, envelope.AggregateId);
        }
        else
        {
            await handler.HandleAsync(envelope, cancellationToken);
        }

        db.Set<InboxMessage>().Add(new InboxMessage
        {
            Consumer = options.Consumer,
            EventId = envelope.EventId,
            EventType = envelope.EventType,
            ProcessedAt = clock.GetUtcNow(),
        });
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>
    /// Records the event's aggregate version if it is newer than the one applied, and says whether it was. The
    /// upsert locks the aggregate's row, so two events of one aggregate are decided one after the other.
    /// </summary>
    private async Task<bool> AdvanceAggregateVersionAsync(TContext db, EventEnvelope envelope, CancellationToken cancellationToken)
    {
        var advanced = await db.Database.SqlQuery<long>($"""
            INSERT INTO consumer_aggregate_versions AS applied (consumer, aggregate_id, version)
            VALUES ({options.Consumer}, {envelope.AggregateId}, {envelope.AggregateVersion})
            ON CONFLICT (consumer, aggregate_id) DO UPDATE SET version = excluded.version, updated_at = now()
            WHERE applied.version < excluded.version
            RETURNING version AS "Value"
            """).ToListAsync(cancellationToken);
        return advanced.Count == 1;
    }
}
