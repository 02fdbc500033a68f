using RabbitMQ.Client;

namespace Shop.ServiceDefaults.Messaging;

/// <summary>
/// Which queue takes which events: the system's subscriptions, in one place for both sides. A consumer declares its
/// own queue when it starts; every outbox relay declares the queues subscribed to an exchange before its first publish
/// there. An event published while its consumer has never run (the first start of the system, a consumer deployed after
/// its producer) then waits in the queue instead of being dropped by an exchange with nothing bound to it.
/// </summary>
public static class Subscriptions
{
    /// <summary>Inventory releases the reservation of an order that was cancelled or failed.</summary>
    public static readonly ConsumerOptions InventoryClosedOrders = new(
        Consumer: "inventory",
        Queue: "inventory.orders",
        Exchange: "orders.events",
        RoutingKeys: ["order.cancelled", "order.failed"]);

    /// <summary>Notifications tells the customer about every step of an order.</summary>
    public static readonly ConsumerOptions NotificationsOrders = new(
        Consumer: "notifications",
        Queue: "notifications.orders",
        Exchange: "orders.events",
        RoutingKeys: ["order.*"]);

    public static readonly SubscriptionCatalog All = new([InventoryClosedOrders, NotificationsOrders]);
}

/// <summary>The subscriptions an outbox relay declares before it publishes to their exchange.</summary>
public sealed record SubscriptionCatalog(IReadOnlyList<ConsumerOptions> Subscriptions)
{
    public IEnumerable<ConsumerOptions> To(string exchange) => Subscriptions.Where(s => s.Exchange == exchange);
}

/// <summary>
/// The broker objects of one subscription. The queue's arguments come from <see cref="ConsumerOptions"/> alone, so the
/// consumer and a publisher declare the same queue; a declaration with other arguments would be refused by the broker.
/// </summary>
internal static class SubscriptionTopology
{
    /// <summary>The exchange, the queue with its dead-letter queue, and the bindings: what a publisher needs to be sure of.</summary>
    public static async Task DeclareQueueAsync(IChannel channel, ConsumerOptions options, CancellationToken cancellationToken)
    {
        var plan = options.RetryPlan;
        await channel.ExchangeDeclareAsync(options.Exchange, ExchangeType.Topic, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(plan.DeadLetterQueue, durable: true, exclusive: false, autoDelete: false,
            new Dictionary<string, object?> { ["x-queue-type"] = "quorum" }, cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(options.Queue, durable: true, exclusive: false, autoDelete: false,
            new Dictionary<string, object?>
            {
                ["x-queue-type"] = "quorum",
                ["x-delivery-limit"] = options.DeliveryLimit,
                ["x-dead-letter-exchange"] = "",
                ["x-dead-letter-routing-key"] = plan.DeadLetterQueue,
            },
            cancellationToken: cancellationToken);
        foreach (var routingKey in options.RoutingKeys)
        {
            await channel.QueueBindAsync(options.Queue, options.Exchange, routingKey, cancellationToken: cancellationToken);
        }
    }

    /// <summary>
    /// The retry queues, declared by the consumer only: their delays are the consumer's configuration. A retry queue has
    /// no consumer: its TTL expires the message back into the queue through the default exchange.
    /// </summary>
    public static async Task DeclareRetryQueuesAsync(IChannel channel, ConsumerOptions options, CancellationToken cancellationToken)
    {
        foreach (var (retryQueue, delay) in options.RetryPlan.RetryQueues)
        {
            await channel.QueueDeclareAsync(retryQueue, durable: true, exclusive: false, autoDelete: false,
                new Dictionary<string, object?>
                {
                    ["x-queue-type"] = "classic",
                    ["x-message-ttl"] = (long)delay.TotalMilliseconds,
                    ["x-dead-letter-exchange"] = "",
                    ["x-dead-letter-routing-key"] = options.Queue,
                },
                cancellationToken: cancellationToken);
        }
    }
}
