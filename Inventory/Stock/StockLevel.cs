namespace Shop.Inventory.Stock;

/// <summary>The stock of one product (read model; changes go through conditional SQL updates, see ReservationStore and StockApi).</summary>
public sealed class StockLevel
{
    public Guid ProductId { get; init; }
    public string TenantId { get; init; } = "";
    public int Quantity { get; init; }
    public int Reserved { get; init; }
    public long Version { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
}
