namespace Shop.ServiceDefaults.Messaging;

public sealed class OutboxMessage
{
    public long Id { get; private set; }
    public Guid EventId { get; private set; }
    public string Exchange { get; private set; } = "";
    public string RoutingKey { get; private set; } = "";
    public string Payload { get; private set; } = "";
    public DateTimeOffset CreatedAt { get; private set; }
    public DateTimeOffset NextAttemptAt { get; private set; }
    public int Attempts { get; private set; }
    public string? LastError { get; private set; }
    public DateTimeOffset? SentAt { get; private set; }

    private OutboxMessage()
    {
    }

    public static OutboxMessage For(string exchange, EventEnvelope envelope, string payload) => new()
    {
        EventId = envelope.EventId,
        Exchange = exchange,
        RoutingKey = envelope.EventType,
        Payload = payload,
        CreatedAt = envelope.OccurredAt,
        NextAttemptAt = envelope.OccurredAt,
    };

    /// <summary>Backs off exponentially (capped at a minute) so a failing broker is not hammered, but never gives up.</summary>
    public void MarkFailed(string error, DateTimeOffset now)
    {
        Attempts++;
        LastError = error.Length > 1000 ? error[..1000] : error;
        NextAttemptAt = now + TimeSpan.FromMilliseconds(Math.Min(60_000, 200 * Math.Pow(2, Math.Min(Attempts, 10))));
    }
}

public sealed class InboxMessage
{
    public string Consumer { get; init; } = "";
    public Guid EventId { get; init; }
    public string EventType { get; init; } = "";
    public DateTimeOffset ProcessedAt { get; init; }
}
