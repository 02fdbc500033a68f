using System.Diagnostics;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Telemetry;

namespace Shop.ServiceDefaults.Messaging;

/// <summary>
/// Publishes unsent outbox rows with publisher confirms and marks them sent in the transaction that claimed
/// them. A failed publish only pushes the row's next attempt back, so nothing stays unpublished for good.
/// </summary>
/// <remarks>
/// Sent rows are kept for <c>Messaging:Outbox:Retention</c> (3 days by default, for inspection and replay by
/// hand) and then deleted, oldest first, a bounded batch per relay cycle until none is left, again every
/// <c>Messaging:Outbox:CleanupInterval</c>; unsent rows never are.
/// </remarks>
internal sealed class OutboxRelay<TContext>(
    SubscriptionCatalog subscriptions,
    IServiceProvider services,
    IServiceScopeFactory scopes,
    RabbitMqConnectionProvider connections,
    IConfiguration configuration,
    TimeProvider clock,
    ILogger<OutboxRelay<TContext>> logger) : BackgroundService where TContext : DbContext
{
    private const int BatchSize = 100;
    private const int CleanupBatchSize = 5000;
    private static readonly TimeSpan IdleDelay = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan LagSampleInterval = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan ConfirmTimeout = TimeSpan.FromSeconds(15);

    private readonly HashSet<string> _declaredExchanges = [];
    private readonly TimeSpan _retention = configuration.GetValue("Messaging:Outbox:Retention", TimeSpan.FromDays(3));
    private readonly TimeSpan _cleanupInterval = configuration.GetValue("Messaging:Outbox:CleanupInterval", TimeSpan.FromMinutes(10));
    private DateTimeOffset _lagSampledAt = DateTimeOffset.MinValue;
    private DateTimeOffset _cleanedAt = DateTimeOffset.MinValue;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await services.WaitForMigrationsAsync<TContext>(stoppingToken);
        IChannel? channel = null;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (channel is not { IsOpen: true })
                {
                    channel?.Dispose();
                    _declaredExchanges.Clear();
                    var connection = await connections.GetConnectionAsync(stoppingToken);
                    channel = await connection.CreateChannelAsync(
                        new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true),
                        stoppingToken);
                }

                await SampleLagAsync(stoppingToken);
                await CleanUpAsync(stoppingToken);
                if (await PublishBatchAsync(channel, stoppingToken) == 0)
                {
                    await Task.Delay(IdleDelay, clock, stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Outbox relay cycle failed; retrying");
                await Task.Delay(TimeSpan.FromSeconds(1), clock, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }

        channel?.Dispose();
    }

    /// <summary>Backlog and age of the oldest unsent event, at most every few seconds, with one query on the partial index.</summary>
    private async Task SampleLagAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        if (now - _lagSampledAt < LagSampleInterval)
        {
            return;
        }

        _lagSampledAt = now;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<TContext>();
            var lag = await db.Database
                .SqlQuery<OutboxLag>($"""SELECT count(*) AS "Unsent", min(created_at) AS "Oldest" FROM outbox_messages WHERE sent_at IS NULL""")
                .ToListAsync(cancellationToken);
            MessagingMetrics.RecordOutbox(typeof(TContext).Name, lag[0].Unsent, lag[0].Oldest, clock);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The metric is not worth a stalled outbox: publishing goes on.
            logger.LogWarning(ex, "Sampling the outbox lag failed");
        }
    }

    /// <summary>
    /// Deletes sent rows past their retention, a bounded batch per cycle so no cycle holds the table or the relay long.
    /// A full batch is followed by another in the next cycle: one batch per interval deleted fewer rows than a busy
    /// service sends (a few a second against hundreds), and the table grew for good.
    /// </summary>
    private async Task CleanUpAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        if (now - _cleanedAt < _cleanupInterval)
        {
            return;
        }

        _cleanedAt = now;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<TContext>();
            var before = now - _retention;
            var deleted = await db.Database.ExecuteSqlInterpolatedAsync($"""
                DELETE FROM outbox_messages WHERE id IN (
                    SELECT id FROM outbox_messages WHERE sent_at < {before} ORDER BY sent_at LIMIT {CleanupBatchSize} FOR UPDATE SKIP LOCKED)
                """, cancellationToken);
            if (deleted > 0)
            {
                logger.LogInformation("Deleted {Count} outbox rows sent before {Before}", deleted, before);
            }

            if (deleted == CleanupBatchSize)
            {
                _cleanedAt = DateTimeOffset.MinValue;
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning(ex, "Cleaning up the outbox failed");
        }
    }

    /// <summary>
    /// On a channel of its own, as a refusal closes the channel it came on. A queue the broker refuses to declare exists
    /// already with other arguments (another version of its consumer declared it): events reach it all the same, and the
    /// consumer reports the mismatch when it declares the queue itself. A lost connection is thrown: the cycle is retried.
    /// </summary>
    private async Task DeclareSubscriptionAsync(ConsumerOptions subscription, CancellationToken cancellationToken)
    {
        var connection = await connections.GetConnectionAsync(cancellationToken);
        await using var topology = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        try
        {
            await SubscriptionTopology.DeclareQueueAsync(topology, subscription, cancellationToken);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.Initiator == ShutdownInitiator.Peer && connection.IsOpen)
        {
            logger.LogWarning(ex, "The broker refused to declare queue {Queue} of {Consumer}; publishing to {Exchange} goes on",
                subscription.Queue, subscription.Consumer, subscription.Exchange);
        }
    }

    private async Task<int> PublishBatchAsync(IChannel channel, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<TContext>();
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);

        var batch = await db.Set<OutboxMessage>()
            .FromSql($"""
                SELECT * FROM outbox_messages
                WHERE sent_at IS NULL AND next_attempt_at <= now()
                ORDER BY id
                LIMIT {BatchSize}
                FOR UPDATE SKIP LOCKED
                """)
            .ToListAsync(cancellationToken);
        if (batch.Count == 0)
        {
            return 0;
        }

        foreach (var exchange in batch.Select(m => m.Exchange).Distinct())
        {
            if (!_declaredExchanges.Contains(exchange))
            {
                // The subscribed queues first: an exchange with nothing bound to it drops what it is given, and the
                // consumer may not have run yet. Remembered only once all of it is declared, so a failure is tried again.
                await channel.ExchangeDeclareAsync(exchange, ExchangeType.Topic, durable: true, autoDelete: false, cancellationToken: cancellationToken);
                foreach (var subscription in subscriptions.To(exchange))
                {
                    await DeclareSubscriptionAsync(subscription, cancellationToken);
                }

                _declaredExchanges.Add(exchange);
            }
        }

        // The whole batch goes out at once and the confirms are awaited together: one round trip per batch, not per event.
        var confirms = new List<(OutboxMessage Message, Task Confirm)>(batch.Count);
        foreach (var message in batch)
        {
            Task confirm;
            try
            {
                confirm = Publish(channel, message, cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                confirm = Task.FromException(ex);
            }

            confirms.Add((message, confirm));
        }

        var sent = new List<long>(batch.Count);
        var published = clock.GetTimestamp();
        var timedOut = false;
        foreach (var (message, confirm) in confirms)
        {
            try
            {
                // A confirm lost with a connection would otherwise hold the batch (and its row locks) for good; an
                // unconfirmed row is simply published again later, and consumers' inboxes absorb the duplicate. The
                // batch went out at once, so its confirms share one deadline, not one each in turn.
                var left = ConfirmTimeout - clock.GetElapsedTime(published);
                await confirm.WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, clock, cancellationToken);
                sent.Add(message.Id);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                timedOut |= ex is TimeoutException;
                message.MarkFailed(ex.Message, clock.GetUtcNow());
                logger.LogWarning(ex, "Publishing event {EventId} failed (attempt {Attempts})", message.EventId, message.Attempts);
            }
        }

        if (timedOut)
        {
            // A channel that stopped confirming while it stayed open would fail every later batch: the next gets a new one.
            await CloseQuietlyAsync(channel);
        }

        // One statement marks the batch sent; only failures go through the change tracker.
        var sentAt = clock.GetUtcNow();
        var sentIds = sent.ToArray();
        await db.Database.ExecuteSqlInterpolatedAsync($"UPDATE outbox_messages SET sent_at = {sentAt} WHERE id = ANY({sentIds})", cancellationToken);
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return batch.Count;
    }

    private async Task CloseQuietlyAsync(IChannel channel)
    {
        try
        {
            await channel.CloseAsync(CancellationToken.None);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogDebug(ex, "Closing a channel that stopped confirming failed");
        }
    }

    /// <returns>A task that completes when the broker has confirmed the message.</returns>
    private static Task Publish(IChannel channel, OutboxMessage message, CancellationToken cancellationToken)
    {
        var envelope = System.Text.Json.JsonSerializer.Deserialize<EventEnvelope>(message.Payload, EventEnvelope.JsonOptions)!;
        ActivityContext.TryParse(envelope.TraceParent, envelope.TraceState, out var parent);
        using var activity = ShopDiagnostics.ActivitySource.StartActivity($"{message.RoutingKey} publish", ActivityKind.Producer, parent);
        activity?.SetTag("messaging.system", "rabbitmq");
        activity?.SetTag("messaging.destination.name", message.Exchange);
        activity?.SetTag("messaging.message.id", message.EventId.ToString());

        var headers = new Dictionary<string, object?>();
        if ((activity?.Id ?? envelope.TraceParent) is { } traceParent)
        {
            headers["traceparent"] = traceParent;
        }

        if (envelope.CorrelationId is { } correlationId)
        {
            headers["x-correlation-id"] = correlationId;
        }

        var properties = new BasicProperties
        {
            MessageId = message.EventId.ToString(),
            Type = message.RoutingKey,
            ContentType = "application/json",
            DeliveryMode = DeliveryModes.Persistent,
            CorrelationId = envelope.CorrelationId,
            Timestamp = new AmqpTimestamp(envelope.OccurredAt.ToUnixTimeSeconds()),
            Headers = headers,
        };

        // With confirmation tracking on, this completes only when the broker has confirmed the message.
        return channel.BasicPublishAsync(message.Exchange, message.RoutingKey, mandatory: false, properties,
            Encoding.UTF8.GetBytes(message.Payload), cancellationToken).AsTask();
    }
}

internal sealed record OutboxLag(long Unsent, DateTimeOffset? Oldest);
