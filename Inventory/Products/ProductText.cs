using System.Globalization;

namespace Shop.Inventory.Products;

/// <summary>What text an admin may store in a product's SKU and name, or an adjustment's reason, beyond its length.</summary>
public static class ProductText
{
    /// <summary>Something a reader can see: not only spaces and invisible formatting characters (a zero-width space, say).</summary>
    public static bool HasVisibleCharacter(string text) => text.Any(c => !char.IsWhiteSpace(c) && !IsFormat(c));

    /// <summary>Invisible formatting characters (Unicode's Cf): zero-width spaces and joiners, direction marks, soft hyphens.</summary>
    public static bool IsFormat(char c) => CharUnicodeInfo.GetUnicodeCategory(c) == UnicodeCategory.Format;

    /// <summary>
    /// The embeddings, overrides and isolates that reorder the text after them (U+202A–U+202E, U+2066–U+2069): shown in a
    /// list or a log, they make the text around them read differently from what it is. Joiners stay allowed: emoji and
    /// several scripts need them.
    /// </summary>
    public static bool IsDirectionOverride(char c) => c is >= '\u202A' and <= '\u202E' or >= '\u2066' and <= '\u2069';
}
