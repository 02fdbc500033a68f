using Shop.ServiceDefaults.Errors;

namespace Shop.Orders.Orders;

/// <summary>Pending → StockReserved → Paid → Shipped, or Cancelled / Failed with a reason (both terminal).</summary>
public enum OrderStatus { Pending, StockReserved, Paid, Shipped, Cancelled, Failed }

public sealed class OrderLine
{
    private OrderLine()
    {
    }

    internal OrderLine(Guid productId, int quantity, decimal unitPrice)
    {
        ProductId = productId;
        Quantity = quantity;
        UnitPrice = unitPrice;
    }

    public Guid ProductId { get; private set; }
    public int Quantity { get; private set; }
    public decimal UnitPrice { get; private set; }
    public decimal Subtotal => UnitPrice * Quantity;
}

/// <summary>One entry of an order's status timeline.</summary>
public sealed class OrderStatusChange
{
    private OrderStatusChange()
    {
    }

    internal OrderStatusChange(OrderStatus status, string? reason, DateTimeOffset at)
    {
        Status = status;
        Reason = reason;
        At = at;
    }

    public long Id { get; private set; }
    public OrderStatus Status { get; private set; }
    public string? Reason { get; private set; }
    public DateTimeOffset At { get; private set; }
}

/// <summary>
/// An order with prices captured from the catalog when it was placed. Every transition checks its rule here
/// and bumps <see cref="Version"/> (the optimistic concurrency token), so two writers never both win.
/// </summary>
public sealed class Order
{
    /// <summary>The largest total the orders table holds (numeric(12,2)); prices and quantities allowed alone can exceed it.</summary>
    public const decimal MaxTotal = 9_999_999_999.99m;

    private readonly List<OrderLine> _lines = [];
    private readonly List<OrderStatusChange> _history = [];

    private Order()
    {
    }

    public Guid Id { get; private set; }
    public string TenantId { get; private set; } = "";
    public string CustomerId { get; private set; } = "";
    public OrderStatus Status { get; private set; }
    public string? StatusReason { get; private set; }
    public decimal Total { get; private set; }
    public string Currency { get; private set; } = "";
    public Guid? ReservationId { get; private set; }
    public string? PaymentId { get; private set; }
    public bool Refunded { get; private set; }

    /// <summary>Set when someone (customer, admin, or the saga after a decline) asked to undo the order; the saga finishes it.</summary>
    public string? CancellationReason { get; private set; }

    public long Version { get; private set; }
    public DateTimeOffset CreatedAt { get; private set; }
    public DateTimeOffset UpdatedAt { get; private set; }
    public IReadOnlyList<OrderLine> Lines => _lines;
    public IReadOnlyList<OrderStatusChange> History => _history;

    public bool IsTerminal => Status is OrderStatus.Cancelled or OrderStatus.Failed;
    public bool CancellationRequested => CancellationReason is not null;

    public static Order Place(string tenantId, string customerId,
        IReadOnlyList<(Guid ProductId, int Quantity, decimal UnitPrice, string Currency)> lines, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrEmpty(tenantId);
        ArgumentException.ThrowIfNullOrEmpty(customerId);
        if (lines.Count == 0)
        {
            throw new DomainException("Order has no items.", "An order needs at least one item.", StatusCodes.Status422UnprocessableEntity);
        }

        var currencies = lines.Select(l => l.Currency).Distinct().ToList();
        if (currencies.Count > 1)
        {
            throw new DomainException("Mixed currencies.", "All items of an order must be priced in one currency.", StatusCodes.Status422UnprocessableEntity);
        }

        var order = new Order
        {
            Id = Guid.CreateVersion7(now),
            TenantId = tenantId,
            CustomerId = customerId,
            Status = OrderStatus.Pending,
            Currency = currencies[0],
            Version = 1,
            CreatedAt = now,
            UpdatedAt = now,
        };
        order._lines.AddRange(lines.Select(l => new OrderLine(l.ProductId, l.Quantity, l.UnitPrice)));
        order.Total = order._lines.Sum(l => l.Subtotal);
        if (order.Total > MaxTotal)
        {
            throw new DomainException("Order total too large.",
                $"An order's total may be at most {MaxTotal.ToString(System.Globalization.CultureInfo.InvariantCulture)} {order.Currency}; this one is "
                + $"{order.Total.ToString(System.Globalization.CultureInfo.InvariantCulture)}. Split it into smaller orders.",
                StatusCodes.Status422UnprocessableEntity);
        }

        order._history.Add(new OrderStatusChange(OrderStatus.Pending, null, now));
        return order;
    }

    public void MarkStockReserved(Guid reservationId, DateTimeOffset now)
    {
        Require(Status == OrderStatus.Pending, "Only a pending order can reserve stock.");
        ReservationId = reservationId;
        MoveTo(OrderStatus.StockReserved, null, now);
    }

    /// <summary>Stock reserved for an order already being cancelled: remembered only so that it is released.</summary>
    public void AttachReservation(Guid reservationId)
    {
        Require(Status == OrderStatus.Pending && CancellationRequested, "Only a pending order being cancelled takes a reservation aside.");
        ReservationId = reservationId;
        Version++;
    }

    /// <summary>An order is paid for once: a second authorization is a bug, not a retry.</summary>
    public void RecordPaymentAuthorized(string paymentId, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrEmpty(paymentId);
        Require(Status == OrderStatus.StockReserved, "Payment is taken only once stock is reserved.");
        if (PaymentId is not null)
        {
            throw new DomainException("Already paid.", $"Order {Id} already has payment {PaymentId}.", StatusCodes.Status409Conflict);
        }

        PaymentId = paymentId;
        Touch(now);
    }

    public void MarkPaid(DateTimeOffset now)
    {
        Require(Status == OrderStatus.StockReserved && PaymentId is not null, "Only an order with reserved stock and an authorized payment becomes paid.");
        MoveTo(OrderStatus.Paid, null, now);
    }

    /// <summary>
    /// Asks for the order to be undone. Idempotent for an order already cancelled or being cancelled; a shipped
    /// or failed order cannot be cancelled.
    /// </summary>
    /// <returns>Whether this call changed anything.</returns>
    public bool RequestCancellation(string reason, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrEmpty(reason);
        if (Status == OrderStatus.Cancelled || CancellationRequested)
        {
            return false;
        }

        if (Status == OrderStatus.Shipped)
        {
            throw new DomainException("Order already shipped.", "A shipped order cannot be cancelled.", StatusCodes.Status409Conflict);
        }

        if (Status == OrderStatus.Failed)
        {
            throw new DomainException("Order failed.", $"Order {Id} failed ({StatusReason}); there is nothing to cancel.", StatusCodes.Status409Conflict);
        }

        CancellationReason = reason;
        Touch(now);
        return true;
    }

    public void Cancel(bool refunded, DateTimeOffset now)
    {
        Require(CancellationRequested && !IsTerminal && Status != OrderStatus.Shipped, "Only an order whose cancellation was requested is cancelled.");
        Refunded = refunded;
        MoveTo(OrderStatus.Cancelled, CancellationReason, now);
    }

    public void Fail(string reason, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrEmpty(reason);
        Require(Status == OrderStatus.Pending, "Only a pending order fails; later steps are undone by cancellation.");
        MoveTo(OrderStatus.Failed, reason, now);
    }

    public void Ship(DateTimeOffset now)
    {
        if (Status != OrderStatus.Paid || CancellationRequested)
        {
            throw new DomainException("Order cannot ship.",
                CancellationRequested ? "The order is being cancelled." : $"Only a paid order ships; this one is {Status}.",
                StatusCodes.Status409Conflict);
        }

        MoveTo(OrderStatus.Shipped, null, now);
    }

    private void MoveTo(OrderStatus status, string? reason, DateTimeOffset now)
    {
        Status = status;
        StatusReason = reason;
        _history.Add(new OrderStatusChange(status, reason, now));
        Touch(now);
    }

    private void Touch(DateTimeOffset now)
    {
        Version++;
        UpdatedAt = now;
    }

    private void Require(bool condition, string detail)
    {
        if (!condition)
        {
            throw new DomainException("Invalid order transition.", $"{detail} Order {Id} is {Status}.", StatusCodes.Status409Conflict);
        }
    }
}
