using System.Diagnostics;
using System.Globalization;
using Shop.ServiceDefaults.Messaging;

namespace Shop.Notifications.Notifications;

public sealed record OrderCreated(Guid OrderId, decimal Total, string Currency);

/// <summary>
/// Records the "order received" message for the customer (delivery channels come with their own issue). It takes effect
/// even after a later event of the order was applied first (an order.created retried after its order.paid went through).
/// </summary>
internal sealed class OrderCreatedHandler(NotificationsDbContext db, TimeProvider clock, ILogger<OrderCreatedHandler> logger) : IEventHandler
{
    public string EventType => "order.created";

    /// <summary>An order was received, whatever happened to it next: a late (retried) event still says so.</summary>
    public bool DropsStaleVersions => false;

    public Task HandleAsync(EventEnvelope envelope, CancellationToken cancellationToken)
    {
        var order = envelope.DataAs<OrderCreated>();
        db.Notifications.Add(new Notification
        {
            Id = Guid.CreateVersion7(),
            EventId = envelope.EventId,
            TenantId = envelope.TenantId,
            Kind = "order-received",
            SubjectId = order.OrderId.ToString(),
            Body = string.Create(CultureInfo.InvariantCulture, $"We received your order {order.OrderId} for {order.Total:F2} {order.Currency}."),
            TraceId = Activity.Current?.TraceId.ToString(),
            CreatedAt = clock.GetUtcNow(),
        });
        logger.LogInformation("Order {OrderId} received; notification recorded", order.OrderId);
        return Task.CompletedTask;
    }
}
