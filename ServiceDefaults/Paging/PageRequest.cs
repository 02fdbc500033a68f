namespace Shop.ServiceDefaults.Paging;

/// <summary>
/// The bounds every paged list of the API shares: <c>page</c> 1–100,000 and <c>pageSize</c> 1–100. The page is bounded
/// so that its offset, <c>(page - 1) * pageSize</c>, always fits an int: a larger one would wrap to a negative OFFSET,
/// which PostgreSQL refuses.
/// </summary>
public static class PageRequest
{
    public const int MaxPage = 100_000;
    public const int MaxPageSize = 100;

    /// <returns>Each invalid field under its own name; empty when both are valid.</returns>
    public static Dictionary<string, string[]> Errors(int page, int pageSize)
    {
        var errors = new Dictionary<string, string[]>();
        if (page is < 1 or > MaxPage)
        {
            errors["page"] = [$"Between 1 and {MaxPage}."];
        }

        if (pageSize is < 1 or > MaxPageSize)
        {
            errors["pageSize"] = [$"Between 1 and {MaxPageSize}."];
        }

        return errors;
    }
}
