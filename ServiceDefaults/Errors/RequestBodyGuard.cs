using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Net.Http.Headers;

namespace Shop.ServiceDefaults.Errors;

/// <summary>
/// Looks at a request before anything reads it: 413 for a declared body length over the server's limit (minimal APIs
/// would report it as a 400 "could not read the body"), and 400 for NUL (<c>%00</c>) in the query string, which no
/// statement could store. JSON is read as UTF-8 whatever charset its content type declares:
/// RFC 8259 (section 11) defines no charset parameter for it and says one has no effect on a compliant recipient, and
/// the framework's reader would transcode a known charset and fail on an unknown one with a 500. A standard method
/// spelled in another case ("head", "Get") is 501: methods are case-sensitive (RFC 9110, section 9.1), and such a
/// method would be routed as the standard one by routing that ignores case, and forwarded as it by HttpClient, while
/// Kestrel does not take it as one (it would send a "head"'s content).
/// </summary>
internal sealed class RequestBodyGuard(RequestDelegate next)
{
    private static readonly string[] StandardMethods =
    [
        HttpMethods.Get, HttpMethods.Post, HttpMethods.Head, HttpMethods.Put, HttpMethods.Delete,
        HttpMethods.Patch, HttpMethods.Options, HttpMethods.Trace, HttpMethods.Connect,
    ];

    public Task InvokeAsync(HttpContext context, IProblemDetailsService problems)
    {
        if (StandardSpelledOtherwise(context.Request.Method) is { } standard)
        {
            return RefuseAsync(context, problems, StatusCodes.Status501NotImplemented, "The request method is not implemented.",
                $"Methods are case-sensitive: '{context.Request.Method}' is not {standard}.");
        }

        var limit = context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;
        if (context.Request.ContentLength is { } length && limit is { } max && length > max)
        {
            return RefuseAsync(context, problems, StatusCodes.Status413PayloadTooLarge, "The request body is too large.", $"At most {max} bytes.");
        }

        // A NUL in the query string (%00; the server refuses one in the path) is refused here, before it reaches a statement.
        if (context.Request.QueryString.Value is { } query && query.Contains("%00", StringComparison.Ordinal))
        {
            return RefuseAsync(context, problems, StatusCodes.Status400BadRequest, UnstorableTextException.Title, UnstorableTextException.Detail);
        }

        if (WithoutJsonCharset(context.Request.ContentType) is { } utf8)
        {
            context.Request.ContentType = utf8;
        }

        // A small JSON body is kept in memory as it is read, so that a refusal can read it again and name every field of
        // the wrong type.
        if (MistypedBodyFields.Keeps(context.Request, context.GetEndpoint()))
        {
            context.Request.EnableBuffering(bufferThreshold: (int)MistypedBodyFields.MaxLength);
        }

        return next(context);
    }

    /// <summary>The standard method that <paramref name="method"/> spells in another case; null for any other method.</summary>
    internal static string? StandardSpelledOtherwise(string method)
    {
        foreach (var standard in StandardMethods)
        {
            if (string.Equals(method, standard, StringComparison.OrdinalIgnoreCase))
            {
                return string.Equals(method, standard, StringComparison.Ordinal) ? null : standard;
            }
        }

        return null;
    }

    /// <summary>A JSON content type without its charset parameter, when it has one other than UTF-8; null for anything else.</summary>
    internal static string? WithoutJsonCharset(string? contentType)
    {
        if (contentType is null || !MediaTypeHeaderValue.TryParse(contentType, out var mediaType)
            || !(mediaType.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
                 || mediaType.Suffix.Equals("json", StringComparison.OrdinalIgnoreCase)))
        {
            return null;
        }

        if (!mediaType.Charset.HasValue || HeaderUtilities.RemoveQuotes(mediaType.Charset).Equals("utf-8", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        mediaType.Charset = default;
        return mediaType.ToString();
    }

    private static async Task RefuseAsync(HttpContext context, IProblemDetailsService problems, int status, string title, string detail)
    {
        context.Response.StatusCode = status;
        await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = new ProblemDetails { Status = status, Title = title, Detail = detail },
        });
    }
}
