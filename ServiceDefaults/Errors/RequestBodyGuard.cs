using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Net.Http.Headers;

namespace Shop.ServiceDefaults.Errors;

/// <summary>
/// Refuses a body before anything reads it: 413 for a declared length over the server's limit (minimal APIs would
/// report it as a 400 "could not read the body"), and 415 for JSON declared in an encoding other than UTF-8, which
/// RFC 8259 requires between systems (the framework's reader would fail on an unknown charset with a 500).
/// </summary>
internal sealed class RequestBodyGuard(RequestDelegate next)
{
    public Task InvokeAsync(HttpContext context, IProblemDetailsService problems)
    {
        var limit = context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;
        if (context.Request.ContentLength is { } length && limit is { } max && length > max)
        {
            return RefuseAsync(context, problems, StatusCodes.Status413PayloadTooLarge, "The request body is too large.", $"At most {max} bytes.");
        }

        if (NonUtf8JsonCharset(context.Request.ContentType) is { } charset)
        {
            return RefuseAsync(context, problems, StatusCodes.Status415UnsupportedMediaType, "JSON must be sent in UTF-8.",
                $"The body declares charset '{charset}'; send it as UTF-8 (or without a charset).");
        }

        return next(context);
    }

    /// <summary>The charset a JSON content type declares when it is not UTF-8; null for anything else.</summary>
    internal static string? NonUtf8JsonCharset(string? contentType)
    {
        if (contentType is null || !MediaTypeHeaderValue.TryParse(contentType, out var mediaType)
            || !(mediaType.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
                 || mediaType.Suffix.Equals("json", StringComparison.OrdinalIgnoreCase)))
        {
            return null;
        }

        var charset = HeaderUtilities.RemoveQuotes(mediaType.Charset).ToString();
        return charset.Length == 0 || charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) ? null : charset;
    }

    private static async Task RefuseAsync(HttpContext context, IProblemDetailsService problems, int status, string title, string detail)
    {
        context.Response.StatusCode = status;
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = new ProblemDetails { Status = status, Title = title, Detail = detail },
        });
    }
}
