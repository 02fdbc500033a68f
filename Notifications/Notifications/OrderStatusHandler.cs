using System.Diagnostics;
using System.Text.Json;
using Shop.ServiceDefaults.Messaging;

namespace Shop.Notifications.Notifications;

/// <summary>
/// Records the customer's message when their order is paid, cancelled, failed or shipped. The consumer ignores
/// an event older than one already applied for the same order, so a late "stock reserved" or "paid" never
/// follows "cancelled" in what the customer is told.
/// </summary>
internal sealed class OrderStatusHandler(string eventType, NotificationsDbContext db, TimeProvider clock, ILogger<OrderStatusHandler> logger) : IEventHandler
{
    public string EventType => eventType;

    public Task HandleAsync(EventEnvelope envelope, CancellationToken cancellationToken)
    {
        var orderId = envelope.Data.GetProperty("orderId").GetGuid();
        var reason = envelope.Data.TryGetProperty("reason", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
        var (kind, body) = envelope.EventType switch
        {
            "order.paid" => ("order-paid", $"Your order {orderId} is paid and being prepared."),
            "order.shipped" => ("order-shipped", $"Your order {orderId} has shipped."),
            "order.cancelled" => ("order-cancelled", $"Your order {orderId} was cancelled ({reason})."),
            "order.failed" => ("order-failed", $"We could not complete your order {orderId} ({reason})."),
            var other => throw new InvalidOperationException($"{other} is not an order status event."),
        };
        db.Notifications.Add(new Notification
        {
            Id = Guid.CreateVersion7(),
            EventId = envelope.EventId,
            TenantId = envelope.TenantId,
            Kind = kind,
            SubjectId = orderId.ToString(),
            Body = body,
            TraceId = Activity.Current?.TraceId.ToString(),
            CreatedAt = clock.GetUtcNow(),
        });
        logger.LogInformation("Order {OrderId}: {Kind} notification recorded", orderId, kind);
        return Task.CompletedTask;
    }
}
