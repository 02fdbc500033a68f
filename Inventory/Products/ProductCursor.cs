using System.Buffers.Text;
using System.Text;

namespace Shop.Inventory.Products;

/// <summary>
/// Where a page of the product list ended: the last product's name and id, the list's order, in a URL-safe token. It is
/// opaque to clients, who follow the <c>Link</c> header; it holds nothing they could not read in the page itself.
/// </summary>
public static class ProductCursor
{
    // A name is at most 200 characters (800 bytes of UTF-8); with the id, 1,112 characters of base64url.
    private const int MaxLength = 1200;

    public static string Format(string name, Guid id) => Base64Url.EncodeToString(Encoding.UTF8.GetBytes($"{id:N}:{name}"));

    public static (string Name, Guid Id)? Parse(string cursor)
    {
        if (cursor.Length > MaxLength || !Base64Url.IsValid(cursor))
        {
            return null;
        }

        string text;
        try
        {
            text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(Base64Url.DecodeFromChars(cursor));
        }
        catch (DecoderFallbackException)
        {
            return null;
        }

        return text.Length > 33 && text[32] == ':' && Guid.TryParseExact(text.AsSpan(0, 32), "N", out var id) && !text.Contains('\0', StringComparison.Ordinal)
            ? (text[33..], id)
            : null;
    }
}
