namespace Shop.Inventory.Stock;

/// <summary>What became of an adjustment asked of a <see cref="StockLevel"/>.</summary>
public enum AdjustmentOutcome
{
    Adjusted,

    /// <summary>A write-off may take only unreserved units.</summary>
    WouldTakeReservedUnits,

    /// <summary>A restock may not take the quantity past <see cref="StockLevel.MaxQuantity"/>.</summary>
    WouldExceedLimit,
}

/// <summary>
/// The stock of one product: the units on hand, those reserved for orders, and the difference, available. Nothing is
/// negative and reserved is never above quantity, here and again in the database's CHECK constraints.
/// <para>
/// Reservations of one product race on its row, so the hot path changes stock with one conditional UPDATE whose WHERE
/// is <see cref="CanReserve"/> (ADR 0006). A reservation of several items and an admin's adjustment lock the row, load
/// it here, let this type decide, and write back what it decided. Confirm, release and expiry move units the
/// reservation already holds, as the reservation decides (<c>Reservation</c>), in one set-based UPDATE.
/// </para>
/// </summary>
public sealed class StockLevel
{
    /// <summary>The most units a restock may bring one product to: far from int's limit, so units coming back never overflow.</summary>
    public const int MaxQuantity = 1_000_000_000;

    private StockLevel()
    {
    }

    public Guid ProductId { get; private set; }
    public string TenantId { get; private set; } = "";
    public int Quantity { get; private set; }
    public int Reserved { get; private set; }
    public long Version { get; private set; }

    /// <summary>When the row was last written, by the database's clock: a change made here takes its time when it is saved.</summary>
    public DateTimeOffset UpdatedAt { get; private set; }

    public int Available => Quantity - Reserved;

    /// <summary>A new product's stock, nothing reserved.</summary>
    public static StockLevel Create(Guid productId, string tenantId, int quantity, DateTimeOffset now)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(quantity);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(quantity, MaxQuantity);
        return new StockLevel { ProductId = productId, TenantId = tenantId, Quantity = quantity, Version = 1, UpdatedAt = now };
    }

    /// <summary>A stored row, read under its lock. A row that breaks the invariants is refused, not worked on.</summary>
    public static StockLevel Load(Guid productId, string tenantId, int quantity, int reserved, long version, DateTimeOffset updatedAt)
    {
        if (quantity < 0 || reserved < 0 || reserved > quantity)
        {
            throw new InvalidOperationException($"The stock of {productId} is inconsistent: quantity {quantity}, reserved {reserved}.");
        }

        return new StockLevel
        {
            ProductId = productId, TenantId = tenantId, Quantity = quantity, Reserved = reserved, Version = version, UpdatedAt = updatedAt,
        };
    }

    public bool CanReserve(int units) => units > 0 && Available >= units;

    /// <summary>Holds <paramref name="units"/> for an order, if that many are available; otherwise changes nothing.</summary>
    public bool Reserve(int units)
    {
        if (!CanReserve(units))
        {
            return false;
        }

        Reserved += units;
        Version++;
        return true;
    }

    /// <summary>
    /// A restock (positive) or a write-off (negative). A write-off takes only unreserved units; a restock stops at
    /// <see cref="MaxQuantity"/>, though units returned by refunds may already have taken the quantity past it.
    /// </summary>
    public AdjustmentOutcome Adjust(int delta)
    {
        ArgumentOutOfRangeException.ThrowIfZero(delta);
        var after = (long)Quantity + delta;
        if (after < Reserved)
        {
            return AdjustmentOutcome.WouldTakeReservedUnits;
        }

        if (delta > 0 && after > MaxQuantity)
        {
            return AdjustmentOutcome.WouldExceedLimit;
        }

        Quantity = (int)after;
        Version++;
        return AdjustmentOutcome.Adjusted;
    }
}
