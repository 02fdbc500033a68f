using Shop.Inventory.Stock;
using Shop.ServiceDefaults.Paging;

namespace Shop.Tests.Unit;

public sealed class AdjustmentCursorTests
{
    private static readonly DateTimeOffset At = new(2026, 12, 3, 13, 45, 7, TimeSpan.Zero);

    [Theory]
    [InlineData(17L)]
    [InlineData(null)]
    public void A_cursor_gives_back_the_row_it_was_made_from(long? version)
    {
        var id = Guid.NewGuid();
        var createdAt = At.AddTicks(1234560); // whole microseconds, as PostgreSQL keeps them

        Assert.Equal((version, createdAt, id), AdjustmentCursor.Parse(AdjustmentCursor.Format(version, createdAt, id)));
    }

    [Theory]
    [InlineData("not base64url!")]
    [InlineData("")]
    [InlineData("0:1:00000000000000000000000000000001")]
    [InlineData("-1:1:00000000000000000000000000000001")]
    [InlineData("+5:1:00000000000000000000000000000001")]
    [InlineData("5:-1:00000000000000000000000000000001")]
    [InlineData("5:99999999999999999999:00000000000000000000000000000001")]
    [InlineData("5:3155378976000000000:00000000000000000000000000000001")]
    [InlineData("5:1:not-a-guid")]
    [InlineData("5:1:00000000000000000000000000000001:extra")]
    [InlineData("5:1")]
    public void Anything_but_a_cursor_the_list_gave_out_is_refused_without_throwing(string text)
    {
        var cursor = text == "not base64url!" ? text : PageCursor.Encode(text);

        Assert.Null(AdjustmentCursor.Parse(cursor));
    }
}
