using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;
using Shop.ServiceDefaults.Messaging;

namespace Shop.Inventory.Reservations;

/// <summary>The part of Orders' cancelled and failed events Inventory reads.</summary>
public sealed record OrderClosed(Guid OrderId, string Reason);

/// <summary>
/// Releases the stock of an order that was cancelled or failed, whatever Orders managed to tell us before: the
/// saga usually releases over HTTP first (then this is a no-op), but when Inventory was unreachable, or the
/// reservation is still on its way, this is what frees the stock. Runs in the consumer's transaction, with its
/// inbox row, in the event's tenant scope: an event can only touch its own tenant's reservation.
/// </summary>
internal sealed class OrderClosedHandler(string eventType, InventoryDbContext db, ReservationStore store, ILogger<OrderClosedHandler> logger) : IEventHandler
{
    public string EventType => eventType;

    public async Task HandleAsync(EventEnvelope envelope, CancellationToken cancellationToken)
    {
        var order = envelope.DataAs<OrderClosed>();
        var connection = (NpgsqlConnection)db.Database.GetDbConnection();
        var transaction = (NpgsqlTransaction)(db.Database.CurrentTransaction?.GetDbTransaction()
            ?? throw new InvalidOperationException("The consumer runs handlers in a transaction."));
        await TenantScope.EnterAsync(connection, transaction, envelope.TenantId, cancellationToken);
        var reason = envelope.EventType == "order.failed" ? "order_failed" : "order_cancelled";
        var result = await store.CloseOrderAsync(connection, transaction, envelope.TenantId, order.OrderId, reason, cancellationToken);
        logger.LogInformation("Order {OrderId} {EventType} ({Reason}): reservation {Result}", order.OrderId, envelope.EventType, order.Reason, result);
    }
}
