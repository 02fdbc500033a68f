using Microsoft.Extensions.Logging;
using RabbitMQ.Client;

namespace Shop.ServiceDefaults.Messaging.DeadLetters;

/// <summary>
/// Reads and replays the dead-letter queues of this service's consumers. Reading is a peek: messages are
/// fetched with manual acks and never acked, so closing the channel returns every one of them. A replay
/// publishes a copy to the original queue with the attempt counter reset, waits for the broker's confirm, and
/// only then acks the dead-letter copy; messages it passes over return when its channel closes.
/// </summary>
public sealed class DeadLetterStore(RabbitMqConnectionProvider connections, IEnumerable<DeadLetterQueueRegistration> queues,
    ILogger<DeadLetterStore> logger)
{
    private const int MaxScanned = 10_000;

    // Messages held by one peek are invisible to another: one operation at a time per process.
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly IReadOnlyList<DeadLetterQueueRegistration> _queues = queues.DistinctBy(q => q.DeadLetterQueue).ToList();

    /// <summary>Up to <paramref name="limit"/> messages per dead-letter queue that match, oldest first.</summary>
    public async Task<IReadOnlyList<DeadLetter>> PeekAsync(Func<DeadLetter, bool> match, int limit, CancellationToken cancellationToken)
    {
        var found = new List<DeadLetter>();
        await _gate.WaitAsync(cancellationToken);
        try
        {
            var connection = await connections.GetConnectionAsync(cancellationToken);
            foreach (var queue in _queues)
            {
                await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
                var (inQueue, scanned) = (0, 0);
                while (inQueue < limit && scanned++ < MaxScanned && await channel.BasicGetAsync(queue.DeadLetterQueue, autoAck: false, cancellationToken) is { } message)
                {
                    var letter = DeadLetter.Read(queue.DeadLetterQueue, queue.Queue, message.BasicProperties, message.Body);
                    if (match(letter))
                    {
                        found.Add(letter);
                        inQueue++;
                    }
                }

                await channel.CloseAsync(cancellationToken);
            }
        }
        finally
        {
            _gate.Release();
        }

        return found;
    }

    /// <summary>Moves matching messages back to their original queue; returns how many were moved.</summary>
    /// <param name="max">Stop after this many (1 to replay one message).</param>
    public async Task<int> ReplayAsync(Func<DeadLetter, bool> match, int max, CancellationToken cancellationToken)
    {
        var replayed = 0;
        await _gate.WaitAsync(cancellationToken);
        try
        {
            var connection = await connections.GetConnectionAsync(cancellationToken);
            foreach (var queue in _queues)
            {
                if (replayed >= max)
                {
                    break;
                }

                await using var channel = await connection.CreateChannelAsync(
                    new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
                // Only what is there now: a replayed message that fails again and comes back must not be met twice.
                var present = (await channel.QueueDeclarePassiveAsync(queue.DeadLetterQueue, cancellationToken)).MessageCount;
                for (var seen = 0; seen < present && replayed < max; seen++)
                {
                    if (await channel.BasicGetAsync(queue.DeadLetterQueue, autoAck: false, cancellationToken) is not { } message)
                    {
                        break;
                    }

                    var letter = DeadLetter.Read(queue.DeadLetterQueue, queue.Queue, message.BasicProperties, message.Body);
                    if (!match(letter))
                    {
                        continue;
                    }

                    var properties = new BasicProperties(message.BasicProperties) { Headers = MessageHeaders.ForReplay(message.BasicProperties.Headers) };
                    await channel.BasicPublishAsync("", queue.Queue, mandatory: true, properties, message.Body, cancellationToken);
                    await channel.BasicAckAsync(message.DeliveryTag, multiple: false, cancellationToken);
                    replayed++;
                    logger.LogInformation("Replayed dead letter {MessageId} ({EventType}) from {DeadLetterQueue} to {Queue}",
                        letter.MessageId, letter.EventType, queue.DeadLetterQueue, queue.Queue);
                }

                await channel.CloseAsync(cancellationToken);
            }
        }
        finally
        {
            _gate.Release();
        }

        return replayed;
    }
}
