using System.Globalization;
using Shop.ServiceDefaults.Paging;

namespace Shop.Inventory.Stock;

/// <summary>
/// Where a page of a product's adjustment history ended: the last row's stock version (none for an adjustment recorded
/// before versions were), its time in UTC ticks and its id, the history's order (see <see cref="PageCursor"/>).
/// </summary>
public static class AdjustmentCursor
{
    public static string Format(long? stockVersion, DateTimeOffset createdAt, Guid id) =>
        PageCursor.Encode(string.Create(CultureInfo.InvariantCulture, $"{stockVersion}:{createdAt.UtcTicks}:{id:N}"));

    public static (long? StockVersion, DateTimeOffset CreatedAt, Guid Id)? Parse(string cursor)
    {
        var parts = PageCursor.Decode(cursor, maxLength: 128)?.Split(':');
        if (parts is not { Length: 3 }
            || !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var ticks)
            || ticks > DateTimeOffset.MaxValue.UtcTicks
            || !Guid.TryParseExact(parts[2], "N", out var id))
        {
            return null;
        }

        if (parts[0].Length == 0)
        {
            return (null, new DateTimeOffset(ticks, TimeSpan.Zero), id);
        }

        return long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var version) && version >= 1
            ? (version, new DateTimeOffset(ticks, TimeSpan.Zero), id)
            : null;
    }
}
