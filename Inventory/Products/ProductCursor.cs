using Shop.ServiceDefaults.Paging;

namespace Shop.Inventory.Products;

/// <summary>Where a page of the product list ended: the last product's name and id, the list's order (see <see cref="PageCursor"/>).</summary>
public static class ProductCursor
{
    // A name is at most 200 characters (800 bytes of UTF-8); with the id, 1,112 characters of base64url.
    private const int MaxLength = 1200;

    public static string Format(string name, Guid id) => PageCursor.Encode($"{id:N}:{name}");

    public static (string Name, Guid Id)? Parse(string cursor) =>
        PageCursor.Decode(cursor, MaxLength) is { Length: > 33 } text && text[32] == ':' && Guid.TryParseExact(text.AsSpan(0, 32), "N", out var id)
            ? (text[33..], id)
            : null;
}
