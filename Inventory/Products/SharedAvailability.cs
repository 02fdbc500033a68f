using System.Globalization;

namespace Shop.Inventory.Products;

/// <summary>
/// A product's availability as the shared cache holds it: <c>available:read-at</c>, the read time in Unix milliseconds
/// on the clock of the replica that read the database. Another replica keeps it in memory for what is left of the TTL
/// by its own clock, and never for longer than the TTL itself: a replica whose clock runs behind the reader's would
/// otherwise count more time left than there is.
/// </summary>
public static class SharedAvailability
{
    public static string Format(int available, long readAtUnixMilliseconds) =>
        string.Create(CultureInfo.InvariantCulture, $"{available}:{readAtUnixMilliseconds}");

    /// <returns>The availability and how many milliseconds it may still be served; null when unreadable or expired.</returns>
    public static (int Available, long MillisecondsLeft)? Parse(string? value, long nowUnixMilliseconds, int ttlMilliseconds)
    {
        var colon = value?.IndexOf(':', StringComparison.Ordinal) ?? -1;
        if (colon < 0
            || !int.TryParse(value.AsSpan(0, colon), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var available)
            || !long.TryParse(value.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var readAt))
        {
            return null;
        }

        var left = Math.Min(readAt + ttlMilliseconds - nowUnixMilliseconds, ttlMilliseconds);
        return left <= 0 ? null : (available, left);
    }
}
