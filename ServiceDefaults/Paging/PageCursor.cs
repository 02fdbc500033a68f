using System.Buffers.Text;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Shop.ServiceDefaults.Paging;

/// <summary>
/// Keyset pages: a list names its next page by an opaque cursor (where the page ended, as URL-safe text) in a
/// <c>Link</c> header (RFC 8288, <c>rel="next"</c>). The cursor holds nothing the client could not read in the page.
/// </summary>
public static class PageCursor
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static string Encode(string text) => Base64Url.EncodeToString(Encoding.UTF8.GetBytes(text));

    /// <returns>The text of a cursor <see cref="Encode"/> could have made, at most <paramref name="maxLength"/> characters long; otherwise null.</returns>
    public static string? Decode(string cursor, int maxLength)
    {
        if (cursor.Length > maxLength || !Base64Url.IsValid(cursor))
        {
            return null;
        }

        try
        {
            var text = StrictUtf8.GetString(Base64Url.DecodeFromChars(cursor));
            return text.Contains('\0', StringComparison.Ordinal) ? null : text;
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    /// <summary>
    /// The <c>Link</c> header value naming the next page: this request's address with its query kept, but for
    /// <c>page</c> and <c>after</c> (in any case, as binding reads them), and <c>after</c> set to <paramref name="cursor"/>.
    /// </summary>
    public static string NextLink(HttpRequest request, string cursor)
    {
        var next = QueryString.Create(request.Query
            .Where(parameter => !string.Equals(parameter.Key, "page", StringComparison.OrdinalIgnoreCase)
                && !string.Equals(parameter.Key, "after", StringComparison.OrdinalIgnoreCase))
            .SelectMany(parameter => parameter.Value.Select(value => KeyValuePair.Create(parameter.Key, value)))
            .Append(KeyValuePair.Create("after", (string?)cursor)));
        return $"<{request.PathBase}{request.Path}{next}>; rel=\"next\"";
    }
}
