using Shop.Inventory.Products;

namespace Shop.Tests.Unit;

public sealed class SharedAvailabilityTests
{
    private const long Now = 1_800_000_000_000;
    private const int Ttl = 1000;

    [Fact]
    public void Availability_is_served_for_what_is_left_of_its_ttl_since_the_read()
    {
        Assert.Equal((7, 600L), SharedAvailability.Parse(SharedAvailability.Format(7, Now - 400), Now, Ttl));
        Assert.Equal((0, 1L), SharedAvailability.Parse(SharedAvailability.Format(0, Now - 999), Now, Ttl));
        Assert.Null(SharedAvailability.Parse(SharedAvailability.Format(7, Now - 1000), Now, Ttl));
    }

    [Fact]
    public void A_read_stamped_by_a_clock_ahead_of_this_one_is_still_served_for_the_ttl_at_most()
    {
        Assert.Equal((5, (long)Ttl), SharedAvailability.Parse(SharedAvailability.Format(5, Now + 3000), Now, Ttl));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("7")]
    [InlineData("x:1800000000000")]
    [InlineData("7:-5")]
    public void Anything_unreadable_is_not_served(string? value) => Assert.Null(SharedAvailability.Parse(value, Now, Ttl));
}
