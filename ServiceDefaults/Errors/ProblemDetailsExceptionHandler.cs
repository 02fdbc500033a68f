using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;

namespace Shop.ServiceDefaults.Errors;

/// <summary>
/// Maps exceptions that describe the caller's mistake to 4xx problem details. Anything else is a defect:
/// it is logged and answered 500 without internals.
/// </summary>
internal sealed class ProblemDetailsExceptionHandler(IProblemDetailsService problemDetails, ILogger<ProblemDetailsExceptionHandler> logger)
    : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is BadHttpRequestException bad)
        {
            httpContext.Response.StatusCode = bad.StatusCode;
            return await WriteAsync(httpContext, exception, await BadRequestProblem.FromAsync(bad, httpContext));
        }

        var (status, title, detail) = exception switch
        {
            DomainException domain => (domain.StatusCode, domain.Title, domain.Message),
            _ when IsUnstorableText(exception) => (StatusCodes.Status400BadRequest, UnstorableTextException.Title, UnstorableTextException.Detail),
            _ when DependencyFailure.Is(exception) => (StatusCodes.Status503ServiceUnavailable, "A service this request depends on is unavailable.", null),
            OperationCanceledException when httpContext.RequestAborted.IsCancellationRequested => (499, "The client closed the request.", exception.Message),
            _ => (StatusCodes.Status500InternalServerError, "An unexpected error occurred.", null),
        };

        if (status == StatusCodes.Status503ServiceUnavailable)
        {
            logger.LogWarning(exception, "Dependency failure for {Method} {Path}", httpContext.Request.Method, httpContext.Request.Path);
            httpContext.Response.Headers.RetryAfter = "5";
        }
        else if (status >= 500)
        {
            logger.LogError(exception, "Unhandled exception for {Method} {Path}", httpContext.Request.Method, httpContext.Request.Path);
        }

        httpContext.Response.StatusCode = status;
        return await WriteAsync(httpContext, exception, new ProblemDetails { Status = status, Title = title, Detail = detail });
    }

    /// <summary>
    /// The problem as JSON when the client accepts it. A client that accepts no JSON (<c>Accept: text/plain</c>) gets the
    /// status alone: the exception is still handled, so the framework does not log it as unhandled and send an empty 400
    /// on its own.
    /// </summary>
    private async Task<bool> WriteAsync(HttpContext httpContext, Exception exception, ProblemDetails problem)
    {
        await problemDetails.TryWriteAsync(new ProblemDetailsContext { HttpContext = httpContext, Exception = exception, ProblemDetails = problem });
        return true;
    }

    /// <summary>
    /// PostgreSQL refused a character of the caller's text: a text value cannot hold U+0000, which JSON and query strings
    /// can carry. Nothing was stored; the request is what has to change.
    /// </summary>
    private static bool IsUnstorableText(Exception exception) =>
        DependencyFailure.Unwrap(exception) is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.CharacterNotInRepertoire };
}
