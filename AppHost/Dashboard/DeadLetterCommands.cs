using System.Diagnostics;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;
using Shop.Hosting.ApplicationModel;

namespace Shop.Hosting.Dashboard;

/// <summary>
/// The dashboard's dead-letter commands: list every dead-letter queue with its depth, and replay one queue's
/// messages to the queue they came from. They talk to the broker directly, with the AppHost's own connection
/// string, across all tenants; the services' <c>/v1/admin/dead-letters</c> API is the per-tenant one.
/// </summary>
internal sealed class DeadLetterCommands(Func<RabbitMQServerResource?> broker)
{
    // Mirrors ServiceDefaults/Messaging (DeadLetterDirectory, MessageHeaders): the AppHost does not reference it.
    private const string DirectoryQueue = "shop.dead-letter-queues";
    private const string OriginalQueueHeader = "x-original-queue";

    private static readonly string[] HeadersResetOnReplay =
    [
        "x-attempt", "x-dead-letter-reason", "x-exception-type", "x-failed-at", "x-original-queue", "x-attempts", "x-death",
        "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason", "x-last-death-exchange", "x-last-death-queue",
        "x-last-death-reason", "x-delivery-count",
    ];

    public sealed record DeadLetterQueueInfo(string Queue, string OriginalQueue, uint Messages);

    public void Map(IEndpointRouteBuilder api)
    {
        api.MapGet("/messaging/dead-letters", ListAsync);
        api.MapGet("/messaging/dead-letters/messages", PeekAsync);
        api.MapPost("/messaging/dead-letters/replay", ReplayAsync);
    }

    private async Task<IResult> ListAsync(CancellationToken cancellationToken)
    {
        if (await ConnectAsync(cancellationToken) is not { } connection)
        {
            return NotRunning();
        }

        await using (connection)
        {
            return Results.Json(await QueuesAsync(connection, cancellationToken));
        }
    }

    public sealed record DeadLetterMessage(string? MessageId, string? Type, string? Reason, string? ExceptionType, string? FailedAt,
        string? Attempts, string Body);

    /// <summary>
    /// The messages in one dead-letter queue (at most <paramref name="limit"/>), read without taking them: they are
    /// fetched unacknowledged and return to the queue when the channel closes.
    /// </summary>
    private Task<IResult> PeekAsync(string? queue, int? limit, CancellationToken cancellationToken) =>
        WithQueueAsync(queue, cancellationToken, async (connection, target) =>
        {
            var messages = new List<DeadLetterMessage>();
            await using (var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken))
            {
                var max = Math.Clamp(limit ?? 50, 1, 500);
                while (messages.Count < Math.Min(max, target.Messages)
                    && await channel.BasicGetAsync(target.Queue, autoAck: false, cancellationToken) is { } message)
                {
                    var headers = message.BasicProperties.Headers;
                    string? Header(string name) => headers?.TryGetValue(name, out var value) == true
                        ? value is byte[] bytes ? Encoding.UTF8.GetString(bytes) : value?.ToString()
                        : null;
                    var body = Encoding.UTF8.GetString(message.Body.Span);
                    messages.Add(new DeadLetterMessage(message.BasicProperties.MessageId, message.BasicProperties.Type,
                        Header("x-dead-letter-reason"), Header("x-exception-type"), Header("x-failed-at"), Header("x-attempts"),
                        body.Length > 4000 ? body[..4000] + "…" : body));
                }

                await channel.CloseAsync(cancellationToken);
            }

            // The broker puts them back after the channel has closed, not with it: answered once they are back, so that a
            // listing sent after the answer counts them (for a while it counted none).
            await using (var probe = await connection.CreateChannelAsync(cancellationToken: cancellationToken))
            {
                var deadline = Stopwatch.GetTimestamp() + 2 * Stopwatch.Frequency;
                while ((await probe.QueueDeclarePassiveAsync(target.Queue, cancellationToken)).MessageCount < messages.Count
                    && Stopwatch.GetTimestamp() < deadline)
                {
                    await Task.Delay(20, cancellationToken);
                }
            }

            return Results.Json(new { queue = target.Queue, originalQueue = target.OriginalQueue, messages });
        });

    /// <summary>Moves every message now in <paramref name="queue"/> back to its original queue, attempt counter reset.</summary>
    private Task<IResult> ReplayAsync(string? queue, CancellationToken cancellationToken) =>
        WithQueueAsync(queue, cancellationToken, async (connection, target) =>
        {
            await using var channel = await connection.CreateChannelAsync(
                new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
            var replayed = 0;
            // Only what is there now: a message that fails again and comes back is not replayed twice.
            for (; replayed < target.Messages; replayed++)
            {
                if (await channel.BasicGetAsync(target.Queue, autoAck: false, cancellationToken) is not { } message)
                {
                    break;
                }

                var headers = new Dictionary<string, object?>(message.BasicProperties.Headers ?? new Dictionary<string, object?>());
                foreach (var name in HeadersResetOnReplay)
                {
                    headers.Remove(name);
                }

                var properties = new BasicProperties(message.BasicProperties) { Headers = headers };
                await channel.BasicPublishAsync("", target.OriginalQueue, mandatory: true, properties, message.Body, cancellationToken);
                await channel.BasicAckAsync(message.DeliveryTag, multiple: false, cancellationToken);
            }

            return Results.Json(new { queue = target.Queue, originalQueue = target.OriginalQueue, replayed });
        });

    /// <summary>Connects to the broker and finds the announced dead-letter queue <paramref name="queue"/> (404 when unknown).</summary>
    private async Task<IResult> WithQueueAsync(string? queue, CancellationToken cancellationToken,
        Func<IConnection, DeadLetterQueueInfo, Task<IResult>> action)
    {
        if (await ConnectAsync(cancellationToken) is not { } connection)
        {
            return NotRunning();
        }

        await using (connection)
        {
            var target = (await QueuesAsync(connection, cancellationToken)).FirstOrDefault(q => q.Queue == queue);
            return target is null
                ? Results.Problem(statusCode: 404, title: "Unknown dead-letter queue.", detail: $"No consumer announced '{queue}'.")
                : await action(connection, target);
        }
    }

    /// <summary>The dead-letter queues the consumers announced, read without consuming the announcements.</summary>
    private static async Task<IReadOnlyList<DeadLetterQueueInfo>> QueuesAsync(IConnection connection, CancellationToken cancellationToken)
    {
        var announced = new Dictionary<string, string>();
        await using (var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken))
        {
            try
            {
                while (announced.Count < 1000 && await channel.BasicGetAsync(DirectoryQueue, autoAck: false, cancellationToken) is { } message)
                {
                    var deadLetterQueue = Encoding.UTF8.GetString(message.Body.Span);
                    announced[deadLetterQueue] = message.BasicProperties.Headers?.TryGetValue(OriginalQueueHeader, out var original) == true && original is byte[] bytes
                        ? Encoding.UTF8.GetString(bytes)
                        : deadLetterQueue.EndsWith(".dlq", StringComparison.Ordinal) ? deadLetterQueue[..^4] : deadLetterQueue;
                }
            }
            catch (OperationInterruptedException)
            {
                // No consumer has started yet: the directory does not exist.
                return [];
            }
        }

        var queues = new List<DeadLetterQueueInfo>();
        foreach (var (queue, original) in announced.OrderBy(a => a.Key, StringComparer.Ordinal))
        {
            // A passive declare of a missing queue closes the channel, so each gets its own.
            await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            try
            {
                var state = await channel.QueueDeclarePassiveAsync(queue, cancellationToken);
                queues.Add(new DeadLetterQueueInfo(queue, original, state.MessageCount));
            }
            catch (OperationInterruptedException)
            {
            }
        }

        return queues;
    }

    private async Task<IConnection?> ConnectAsync(CancellationToken cancellationToken)
    {
        if (broker()?.ConnectionString is not { } connectionString)
        {
            return null;
        }

        var factory = new ConnectionFactory
        {
            Uri = new Uri(connectionString),
            ClientProvidedName = "apphost-dashboard",
            AutomaticRecoveryEnabled = false,
            RequestedConnectionTimeout = TimeSpan.FromSeconds(3),
        };
        try
        {
            return await factory.CreateConnectionAsync(cancellationToken);
        }
        catch (BrokerUnreachableException)
        {
            return null;
        }
    }

    private static IResult NotRunning() =>
        Results.Problem(statusCode: 503, title: "RabbitMQ is not reachable.", detail: "Start the messaging resource and try again.");
}
