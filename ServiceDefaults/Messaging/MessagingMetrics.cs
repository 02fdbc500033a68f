using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Shop.ServiceDefaults.Messaging;

/// <summary>
/// Meter <c>Shop.Messaging</c>: what consumers did with messages (tagged with queue and event type) and the
/// outbox lag. The outbox gauges report what the relay last sampled, so a scrape never queries the database.
/// </summary>
public static class MessagingMetrics
{
    public const string MeterName = "Shop.Messaging";

    private static readonly Meter Meter = new(MeterName);
    private static readonly ConcurrentDictionary<string, OutboxSample> Outboxes = new();

    private static readonly Counter<long> Consumed = Meter.CreateCounter<long>("shop.messaging.consumed", "{message}",
        "Messages handled and acknowledged (including duplicates and stale events acknowledged without effect).");

    private static readonly Counter<long> Retried = Meter.CreateCounter<long>("shop.messaging.retried", "{message}",
        "Messages whose handler failed, sent to a retry queue.");

    private static readonly Counter<long> Deferred = Meter.CreateCounter<long>("shop.messaging.deferred", "{message}",
        "Messages whose handler could not reach a dependency, sent to a retry queue without counting the attempt.");

    private static readonly Counter<long> DeadLettered = Meter.CreateCounter<long>("shop.messaging.dead_lettered", "{message}",
        "Messages sent to a dead-letter queue (retries exhausted, unreadable or breaking their schema).");

    static MessagingMetrics()
    {
        Meter.CreateObservableGauge("shop.outbox.backlog", () => Outboxes.Select(o => new Measurement<long>(o.Value.Unsent, Tag(o.Key))),
            "{event}", "Outbox events not yet published.");
        Meter.CreateObservableGauge("shop.outbox.oldest_unsent_age", () => Outboxes.Select(o => new Measurement<double>(o.Value.AgeSeconds(), Tag(o.Key))),
            "s", "Age of the oldest outbox event not yet published (0 when none).");
    }

    public static void RecordConsumed(string queue, string? eventType) => Consumed.Add(1, Tags(queue, eventType));

    public static void RecordRetried(string queue, string? eventType) => Retried.Add(1, Tags(queue, eventType));

    public static void RecordDeferred(string queue, string? eventType) => Deferred.Add(1, Tags(queue, eventType));

    public static void RecordDeadLettered(string queue, string? eventType) => DeadLettered.Add(1, Tags(queue, eventType));

    /// <param name="outbox">Which outbox (the DbContext's name): one process may relay several.</param>
    public static void RecordOutbox(string outbox, long unsent, DateTimeOffset? oldestUnsent, TimeProvider clock) =>
        Outboxes[outbox] = new OutboxSample(unsent, oldestUnsent, clock);

    private static TagList Tags(string queue, string? eventType) => new()
    {
        { "messaging.destination.name", queue },
        { "messaging.event.type", eventType ?? "unknown" },
    };

    private static KeyValuePair<string, object?> Tag(string outbox) => new("outbox", outbox);

    private sealed record OutboxSample(long Unsent, DateTimeOffset? OldestUnsent, TimeProvider Clock)
    {
        // Aged at observation time: if the relay stops sampling, a stuck event keeps getting older on the chart.
        public double AgeSeconds() => OldestUnsent is { } oldest ? Math.Max(0, (Clock.GetUtcNow() - oldest).TotalSeconds) : 0;
    }
}
