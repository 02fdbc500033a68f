using Shop.ServiceDefaults.Errors;

namespace Shop.Orders.Orders;

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

/// <summary>An order with prices captured from the catalog when it was placed.</summary>
public sealed class Order
{
    private readonly List<OrderLine> _lines = [];

    private Order()
    {
    }

    public Guid Id { get; private set; }
    public string TenantId { get; private set; } = "";
    public string CustomerId { get; private set; } = "";
    public OrderStatus Status { get; private set; }
    public decimal Total { get; private set; }
    public string Currency { get; private set; } = "";
    public long Version { get; private set; }
    public DateTimeOffset CreatedAt { get; private set; }
    public DateTimeOffset UpdatedAt { get; private set; }
    public IReadOnlyList<OrderLine> Lines => _lines;

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
        return order;
    }
}
