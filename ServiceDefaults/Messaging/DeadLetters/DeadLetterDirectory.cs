using System.Text;
using RabbitMQ.Client;

namespace Shop.ServiceDefaults.Messaging.DeadLetters;

/// <summary>
/// AMQP cannot list queues, so each consumer announces its dead-letter queue, when it starts, in a small
/// well-known queue that operators' tools (the AppHost dashboard) peek at. Announcements repeat on every
/// start; readers de-duplicate, and the queue keeps only the latest 1,000.
/// </summary>
public static class DeadLetterDirectory
{
    public const string QueueName = "shop.dead-letter-queues";

    public static async Task RegisterAsync(IChannel channel, string queue, string deadLetterQueue, CancellationToken cancellationToken)
    {
        await channel.QueueDeclareAsync(QueueName, durable: true, exclusive: false, autoDelete: false,
            new Dictionary<string, object?> { ["x-queue-type"] = "classic", ["x-max-length"] = 1000 }, cancellationToken: cancellationToken);
        var properties = new BasicProperties
        {
            DeliveryMode = DeliveryModes.Persistent,
            ContentType = "text/plain",
            Headers = new Dictionary<string, object?> { [MessageHeaders.OriginalQueue] = queue },
        };
        await channel.BasicPublishAsync("", QueueName, mandatory: false, properties, Encoding.UTF8.GetBytes(deadLetterQueue), cancellationToken);
    }
}
