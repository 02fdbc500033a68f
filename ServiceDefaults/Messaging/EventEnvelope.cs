using System.Text.Json;

namespace Shop.ServiceDefaults.Messaging;

/// <summary>The envelope every event travels in (see DESIGN.md, Events).</summary>
public sealed record EventEnvelope(
    Guid EventId,
    string EventType,
    int EventVersion,
    DateTimeOffset OccurredAt,
    string TenantId,
    string AggregateId,
    long AggregateVersion,
    string? CorrelationId,
    string? TraceParent,
    string? TraceState,
    JsonElement Data)
{
    public static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web);

    public T DataAs<T>() => Data.Deserialize<T>(JsonOptions)
        ?? throw new JsonException($"Event {EventId} ({EventType}) has no data.");
}
