namespace Shop.Notifications.Notifications;

public sealed class Notification
{
    public Guid Id { get; init; }
    public Guid EventId { get; init; }

    /// <summary>The tenant of the event the notification was made from (none on rows made before it was recorded).</summary>
    public string? TenantId { get; init; }
    public string Kind { get; init; } = "";
    public string SubjectId { get; init; } = "";
    public string Body { get; init; } = "";

    /// <summary>The trace the notification was produced in, so it can be found from the order's trace.</summary>
    public string? TraceId { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
}
