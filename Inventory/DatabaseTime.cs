namespace Shop.Inventory;

/// <summary>Times as PostgreSQL stores them.</summary>
public static class DatabaseTime
{
    /// <summary>
    /// A time cut to PostgreSQL's microseconds: an answer that shows a time it is about to store then shows what every
    /// later read of it shows.
    /// </summary>
    public static DateTimeOffset Stored(DateTimeOffset time) => time.AddTicks(-(time.Ticks % 10));
}
