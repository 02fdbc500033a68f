using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Mvc;

namespace Shop.ServiceDefaults.Errors;

/// <summary>
/// Answers 413 for a declared body over the server's limit before anything reads it. (Minimal APIs would report
/// the same failure as a 400 "could not read the body".)
/// </summary>
internal sealed class RequestSizeGuard(RequestDelegate next)
{
    public async Task InvokeAsync(HttpContext context, IProblemDetailsService problems)
    {
        var limit = context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;
        if (context.Request.ContentLength is { } length && limit is { } max && length > max)
        {
            context.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
            await problems.WriteAsync(new ProblemDetailsContext
            {
                HttpContext = context,
                ProblemDetails = new ProblemDetails { Status = 413, Title = "The request body is too large.", Detail = $"At most {max} bytes." },
            });
            return;
        }

        await next(context);
    }
}
