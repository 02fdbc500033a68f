namespace Shop.Orders.Saga;

/// <summary>The data of the events Orders publishes on <see cref="Exchange"/> (schemas: ServiceDefaults/Messaging/Schemas).</summary>
public static class OrderEvents
{
    public const string Exchange = "orders.events";

    public const string Created = "order.created";
    public const string StockReserved = "order.stock_reserved";
    public const string Paid = "order.paid";
    public const string Cancelled = "order.cancelled";
    public const string Failed = "order.failed";
    public const string Shipped = "order.shipped";
}

public sealed record OrderCreatedItem(Guid ProductId, int Quantity, decimal UnitPrice);

public sealed record OrderCreatedData(Guid OrderId, string CustomerId, decimal Total, string Currency, IReadOnlyList<OrderCreatedItem> Items);

public sealed record OrderStockReservedData(Guid OrderId, Guid ReservationId);

public sealed record OrderPaidData(Guid OrderId, string PaymentId, decimal Amount, string Currency);

public sealed record OrderCancelledData(Guid OrderId, string Reason, Guid? ReservationId, bool Refunded);

public sealed record OrderFailedData(Guid OrderId, string Reason, Guid? ReservationId);

public sealed record OrderShippedData(Guid OrderId);
