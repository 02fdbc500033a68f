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
        var (status, title) = exception switch
        {
            BadHttpRequestException bad => (bad.StatusCode, "The request is malformed."),
            DomainException domain => (domain.StatusCode, domain.Title),
            _ when IsDependencyFailure(exception) => (StatusCodes.Status503ServiceUnavailable, "A service this request depends on is unavailable."),
            OperationCanceledException when httpContext.RequestAborted.IsCancellationRequested => (499, "The client closed the request."),
            _ => (StatusCodes.Status500InternalServerError, "An unexpected error occurred."),
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
        return await problemDetails.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            Exception = exception,
            ProblemDetails = new ProblemDetails
            {
                Status = status,
                Title = title,
                Detail = status < 500 ? exception.Message : null,
            },
        });
    }

    /// <summary>
    /// A dependency this service calls failed or is unreachable: not the caller's fault, and not a defect here. For
    /// PostgreSQL that is also a server going away under a statement (administrator or crash shutdown, still starting)
    /// or any connection exception (class 08), which Npgsql does not all count as transient. EF Core wraps what fails
    /// under SaveChanges.
    /// </summary>
    internal static bool IsDependencyFailure(Exception exception) => exception is HttpRequestException
        or Polly.CircuitBreaker.BrokenCircuitException or Polly.Timeout.TimeoutRejectedException
        or StackExchange.Redis.RedisException or TimeoutException or Npgsql.NpgsqlException { IsTransient: true }
        or Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.QueryCanceled or Npgsql.PostgresErrorCodes.AdminShutdown
            or Npgsql.PostgresErrorCodes.CrashShutdown or Npgsql.PostgresErrorCodes.CannotConnectNow or ['0', '8', ..] }
        || exception is Microsoft.EntityFrameworkCore.DbUpdateException { InnerException: { } inner } && IsDependencyFailure(inner);
}
