using System.Diagnostics;
using Npgsql;
using Shop.ServiceDefaults.Correlation;
using Shop.ServiceDefaults.Messaging;

namespace Shop.Inventory.Reservations;

/// <summary>
/// The reservation events Inventory publishes on <see cref="Exchange"/>, built here and written by the store in
/// the statement or transaction that changes the reservation. (Stock crossing zero and expiry are written by
/// database triggers: see Migrations/0003_events.sql.) The aggregate is the reservation: version 1 when made,
/// 2 when confirmed or released, 3 when a confirmed one is released (a return).
/// </summary>
public static class InventoryEvents
{
    public const string Exchange = "inventory.events";

    /// <summary>Stands in for the tenant in a payload whose tenant the statement fills from the stock row.</summary>
    public const string TenantFromStatement = "(from the stock row)";

    /// <summary>
    /// The statement to put before one that may raise a stock-level event (the trigger of migration 0003 reads the
    /// settings it makes): that event then carries the correlation id and trace of <paramref name="raised"/>, the event
    /// written with the same change. The settings last until the transaction ends, or until the next such statement in a
    /// batch of several requests' changes. Empty is read as none.
    /// </summary>
    public static NpgsqlBatchCommand ContextCommand(EventEnvelope raised) => ContextCommand(raised.CorrelationId, raised.TraceParent);

    /// <summary>As above, for the current correlation id and trace (those an event built now would carry).</summary>
    public static NpgsqlBatchCommand ContextCommand() => ContextCommand(CorrelationContext.Current,
        Activity.Current is { IdFormat: ActivityIdFormat.W3C } activity ? activity.Id : null);

    private static NpgsqlBatchCommand ContextCommand(string? correlationId, string? traceParent)
    {
        var command = new NpgsqlBatchCommand("SELECT set_config('app.correlation_id', $1, true), set_config('app.traceparent', $2, true)");
        command.Parameters.Add(new() { Value = correlationId ?? "" });
        command.Parameters.Add(new() { Value = traceParent ?? "" });
        return command;
    }

    public static EventEnvelope Reserved(ReservationResponse reservation, string tenantId) =>
        MessagingModel.NewEnvelope("inventory.reserved", 1, tenantId, reservation.Id.ToString(), 1,
            new { reservationId = reservation.Id, orderId = reservation.OrderId, items = reservation.Items, expiresAt = reservation.ExpiresAt });

    public static EventEnvelope Confirmed(ReservationResponse reservation, string tenantId) =>
        MessagingModel.NewEnvelope("inventory.confirmed", 1, tenantId, reservation.Id.ToString(), 2,
            new { reservationId = reservation.Id, orderId = reservation.OrderId, items = reservation.Items });

    public static EventEnvelope Released(ReservationResponse reservation, string tenantId, string reason, bool wasConfirmed) =>
        MessagingModel.NewEnvelope("inventory.released", 1, tenantId, reservation.Id.ToString(), wasConfirmed ? 3 : 2,
            new { reservationId = reservation.Id, orderId = reservation.OrderId, items = reservation.Items, reason, returned = wasConfirmed });
}
