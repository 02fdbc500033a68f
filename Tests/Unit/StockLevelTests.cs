using Shop.Inventory.Stock;

namespace Shop.Tests.Unit;

public sealed class StockLevelTests
{
    private static StockLevel Stock(int quantity, int reserved) =>
        StockLevel.Load(Guid.NewGuid(), "demo", quantity, reserved, version: 7, DateTimeOffset.UnixEpoch);

    [Fact]
    public void Available_is_what_is_not_reserved_and_only_that_can_be_reserved()
    {
        var stock = Stock(10, 7);

        Assert.Equal(3, stock.Available);
        Assert.False(stock.Reserve(4));
        Assert.Equal((7, 7L), (stock.Reserved, stock.Version));
        Assert.True(stock.Reserve(3));
        Assert.Equal((10, 10, 0, 8L), (stock.Quantity, stock.Reserved, stock.Available, stock.Version));
        Assert.False(stock.CanReserve(1));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void Nothing_is_reserved_by_asking_for_no_units(int units)
    {
        var stock = Stock(10, 0);

        Assert.False(stock.Reserve(units));
        Assert.Equal(0, stock.Reserved);
    }

    [Fact]
    public void A_write_off_takes_only_unreserved_units()
    {
        var stock = Stock(10, 6);

        Assert.Equal(AdjustmentOutcome.WouldTakeReservedUnits, stock.Adjust(-5));
        Assert.Equal((10, 7L), (stock.Quantity, stock.Version));
        Assert.Equal(AdjustmentOutcome.Adjusted, stock.Adjust(-4));
        Assert.Equal((6, 6, 0, 8L), (stock.Quantity, stock.Reserved, stock.Available, stock.Version));
    }

    [Fact]
    public void A_restock_stops_at_the_limit_but_a_write_off_above_it_is_allowed()
    {
        var stock = Stock(StockLevel.MaxQuantity - 5, 0);

        Assert.Equal(AdjustmentOutcome.WouldExceedLimit, stock.Adjust(6));
        Assert.Equal(AdjustmentOutcome.Adjusted, stock.Adjust(5));
        Assert.Equal(StockLevel.MaxQuantity, stock.Quantity);

        var refunded = Stock(StockLevel.MaxQuantity + 10, 0);
        Assert.Equal(AdjustmentOutcome.WouldExceedLimit, refunded.Adjust(1));
        Assert.Equal(AdjustmentOutcome.Adjusted, refunded.Adjust(-1));
        Assert.Equal(StockLevel.MaxQuantity + 9, refunded.Quantity);
    }

    [Fact]
    public void A_restock_near_int_max_does_not_overflow()
    {
        var stock = Stock(int.MaxValue - 1, 0);

        Assert.Equal(AdjustmentOutcome.WouldExceedLimit, stock.Adjust(int.MaxValue));
        Assert.Equal(int.MaxValue - 1, stock.Quantity);
    }

    [Theory]
    [InlineData(-1, 0)]
    [InlineData(5, -1)]
    [InlineData(5, 6)]
    public void A_row_that_breaks_the_invariants_is_refused(int quantity, int reserved) =>
        Assert.Throws<InvalidOperationException>(() => Stock(quantity, reserved));

    [Theory]
    [InlineData(-1)]
    [InlineData(StockLevel.MaxQuantity + 1)]
    public void A_new_product_starts_with_between_none_and_the_limit(int quantity) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => StockLevel.Create(Guid.NewGuid(), "demo", quantity, DateTimeOffset.UnixEpoch));

    [Fact]
    public void A_new_product_starts_with_nothing_reserved_at_version_one()
    {
        var stock = StockLevel.Create(Guid.NewGuid(), "demo", 12, DateTimeOffset.UnixEpoch);

        Assert.Equal((12, 0, 12, 1L), (stock.Quantity, stock.Reserved, stock.Available, stock.Version));
    }
}
