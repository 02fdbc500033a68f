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
using Shop.ServiceDefaults.Telemetry;

namespace Shop.ServiceDefaults.Messaging;

/// <summary>
/// Consumes one durable quorum queue with manual acks. Each event is handled in a transaction that also
/// records it in the inbox, and acked only after that commits: a redelivered event is recognised and acked
/// without running again. A message that keeps failing is dead-lettered by the broker after the delivery
/// limit; a message that cannot be read at all goes there at once.
/// </summary>
internal sealed class EventConsumer<TContext>(
    ConsumerOptions options,
    ConsumerReadiness readiness,
    IServiceScopeFactory scopes,
    RabbitMqConnectionProvider connections,
    TimeProvider clock,
    ILogger<EventConsumer<TContext>> logger) : BackgroundService where TContext : DbContext
{
    private IChannel? _channel;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        for (var attempt = 1; !stoppingToken.IsCancellationRequested; attempt++)
        {
            try
            {
                var connection = await connections.GetConnectionAsync(stoppingToken);
                _channel = await connection.CreateChannelAsync(cancellationToken: stoppingToken);
                await DeclareTopologyAsync(_channel, stoppingToken);
                await _channel.BasicQosAsync(0, options.Prefetch, false, stoppingToken);

                var consumer = new AsyncEventingBasicConsumer(_channel);
                consumer.ReceivedAsync += (_, delivery) => OnReceivedAsync(delivery, stoppingToken);
                await _channel.BasicConsumeAsync(options.Queue, autoAck: false, consumer, stoppingToken);
                readiness.IsConsuming = true;
                logger.LogInformation("Consuming {Queue} ({Bindings})", options.Queue, string.Join(", ", options.RoutingKeys));
                return;
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning(ex, "Could not start consuming {Queue} (attempt {Attempt}); retrying", options.Queue, attempt);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(2000, 250 * attempt)), clock, stoppingToken);
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_channel is { IsOpen: true } channel)
        {
            await channel.CloseAsync(cancellationToken);
        }
    }

    private async Task DeclareTopologyAsync(IChannel channel, CancellationToken cancellationToken)
    {
        var deadLetterQueue = $"{options.Queue}.dlq";
        await channel.ExchangeDeclareAsync(options.Exchange, ExchangeType.Topic, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(deadLetterQueue, durable: true, exclusive: false, autoDelete: false,
            new Dictionary<string, object?> { ["x-queue-type"] = "quorum" }, cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(options.Queue, durable: true, exclusive: false, autoDelete: false,
            new Dictionary<string, object?>
            {
                ["x-queue-type"] = "quorum",
                ["x-delivery-limit"] = options.DeliveryLimit,
                ["x-dead-letter-exchange"] = "",
                ["x-dead-letter-routing-key"] = deadLetterQueue,
            },
            cancellationToken: cancellationToken);
        foreach (var routingKey in options.RoutingKeys)
        {
            await channel.QueueBindAsync(options.Queue, options.Exchange, routingKey, cancellationToken: cancellationToken);
        }
    }

    private async Task OnReceivedAsync(BasicDeliverEventArgs delivery, CancellationToken stoppingToken)
    {
        var channel = _channel!;
        EventEnvelope? envelope;
        try
        {
            envelope = JsonSerializer.Deserialize<EventEnvelope>(delivery.Body.Span, EventEnvelope.JsonOptions);
        }
        catch (JsonException ex)
        {
            logger.LogError(ex, "Unreadable message {MessageId} on {Queue}; dead-lettering it", delivery.BasicProperties.MessageId, options.Queue);
            await channel.BasicNackAsync(delivery.DeliveryTag, multiple: false, requeue: false, stoppingToken);
            return;
        }

        if (envelope is null || envelope.EventId == Guid.Empty)
        {
            await channel.BasicNackAsync(delivery.DeliveryTag, multiple: false, requeue: false, stoppingToken);
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
            await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false, stoppingToken);
        }
        catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
        {
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            logger.LogError(ex, "Handling {EventType} {EventId} failed; it will be redelivered", envelope.EventType, envelope.EventId);
            // A short pause so a failing dependency is not hammered; the broker counts the delivery.
            await Task.Delay(TimeSpan.FromMilliseconds(500), clock, stoppingToken);
            await channel.BasicNackAsync(delivery.DeliveryTag, multiple: false, requeue: true, stoppingToken);
        }
    }

    private async Task HandleOnceAsync(EventEnvelope envelope, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<TContext>();
        var handler = scope.ServiceProvider.GetServices<IEventHandler>().FirstOrDefault(h => h.EventType == envelope.EventType);
        if (handler is null)
        {
            logger.LogDebug("No handler for {EventType}; acknowledged", envelope.EventType);
            return;
        }

        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var seen = await db.Set<InboxMessage>().AnyAsync(m => m.Consumer == options.Consumer && m.EventId == envelope.EventId, cancellationToken);
        if (seen)
        {
            logger.LogInformation("Event {EventId} was already processed; acknowledged without effect", envelope.EventId);
            return;
        }

        await handler.HandleAsync(envelope, cancellationToken);
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
}
