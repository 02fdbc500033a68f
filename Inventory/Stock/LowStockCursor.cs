using System.Globalization;
using Shop.ServiceDefaults.Paging;

namespace Shop.Inventory.Stock;

/// <summary>Where a low-stock page ended: the last row's availability and product id (see <see cref="PageCursor"/>).</summary>
public static class LowStockCursor
{
    public static string Format(int available, Guid productId) =>
        PageCursor.Encode(string.Create(CultureInfo.InvariantCulture, $"{available}:{productId:N}"));

    public static (int Available, Guid ProductId)? Parse(string cursor)
    {
        var parts = PageCursor.Decode(cursor, maxLength: 64)?.Split(':');
        return parts is { Length: 2 }
            && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var available)
            && Guid.TryParseExact(parts[1], "N", out var productId)
            ? (available, productId)
            : null;
    }
}
