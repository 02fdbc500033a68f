using System.Globalization;
using System.Text;

namespace Shop.Inventory.Products;

/// <summary>
/// What text an admin may store in a product's SKU and name, or an adjustment's reason, beyond its length. Judged by
/// character (<see cref="Rune"/>), not by UTF-16 unit: a character above U+FFFF, such as an invisible tag, is two units,
/// and neither of them is classed as what the character is.
/// </summary>
public static class ProductText
{
    /// <summary>Something a reader can see: not only spaces and invisible formatting characters (a zero-width space, say).</summary>
    public static bool HasVisibleCharacter(string text) =>
        text.EnumerateRunes().Any(rune => !Rune.IsWhiteSpace(rune) && Rune.GetUnicodeCategory(rune) != UnicodeCategory.Format);

    /// <summary>An identifier: no control characters, no line or paragraph separators, no invisible formatting characters.</summary>
    public static bool IsCleanIdentifier(string text) =>
        text.EnumerateRunes().All(rune => Rune.GetUnicodeCategory(rune) is not (UnicodeCategory.Control or UnicodeCategory.Format
            or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator));

    /// <summary>One line of text: no control characters or line and paragraph separators, and no direction overrides.</summary>
    public static bool IsCleanLine(string text) =>
        text.EnumerateRunes().All(rune => Rune.GetUnicodeCategory(rune) is not (UnicodeCategory.Control
            or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator) && !IsDirectionOverride(rune));

    /// <summary>Text of several lines: line breaks and tabs, but no other control characters and no direction overrides.</summary>
    public static bool IsCleanText(string text) =>
        text.EnumerateRunes().All(rune => (Rune.GetUnicodeCategory(rune) != UnicodeCategory.Control || rune.Value is '\n' or '\r' or '\t')
            && !IsDirectionOverride(rune));

    /// <summary>
    /// The left-to-right and right-to-left overrides (U+202D, U+202E): shown in a list or a log they make the text after
    /// them read backwards, so that it reads as something it is not. The embeddings and isolates that right-to-left
    /// text needs stay allowed, as do the joiners of emoji and several scripts.
    /// </summary>
    private static bool IsDirectionOverride(Rune rune) => rune.Value is 0x202D or 0x202E;
}
