using System.Buffers.Text;
using System.Globalization;
using System.Text;

namespace Shop.Inventory.Stock;

/// <summary>
/// Where a low-stock page ended: the last row's availability and product id, in a URL-safe token. It is opaque to
/// clients, who follow the <c>Link</c> header; it holds nothing they could not read in the page itself.
/// </summary>
public static class LowStockCursor
{
    public static string Format(int available, Guid productId) =>
        Base64Url.EncodeToString(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{available}:{productId:N}")));

    public static (int Available, Guid ProductId)? Parse(string cursor)
    {
        if (cursor.Length > 64 || !Base64Url.IsValid(cursor))
        {
            return null;
        }

        var parts = Encoding.ASCII.GetString(Base64Url.DecodeFromChars(cursor)).Split(':');
        return parts.Length == 2
            && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var available)
            && Guid.TryParseExact(parts[1], "N", out var productId)
            ? (available, productId)
            : null;
    }
}
