using System.Collections.Frozen;
using System.Diagnostics.Metrics;
using System.Globalization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;

namespace Shop.Gateway.RateLimiting;

/// <summary>
/// Picks the policy and partition of a request, asks the shared limiter, and answers a refusal with 429 problem
/// details. Allowed and refused responses carry the RateLimit-Policy and RateLimit headers
/// (draft-ietf-httpapi-ratelimit-headers). It reads <see cref="HttpContext.User"/> and the client IP, so it runs
/// after authentication and the forwarded-headers middleware.
/// </summary>
public sealed class SharedRateLimitingMiddleware
{
    private static readonly PathString[] UnlimitedPaths = ["/health", "/alive", "/.well-known"];

    private readonly RequestDelegate _next;
    private readonly RedisSlidingWindowLimiter _limiter;
    private readonly IProblemDetailsService _problemDetails;
    private readonly RateLimitingOptions _options;
    private readonly FrozenSet<string> _authPaths;
    private readonly Counter<long> _decisions;

    public SharedRateLimitingMiddleware(
        RequestDelegate next,
        RedisSlidingWindowLimiter limiter,
        IProblemDetailsService problemDetails,
        IOptions<RateLimitingOptions> options,
        IMeterFactory meterFactory)
    {
        _next = next;
        _limiter = limiter;
        _problemDetails = problemDetails;
        _options = options.Value;
        _authPaths = _options.AuthPaths.Select(NormalizePath).ToFrozenSet(StringComparer.OrdinalIgnoreCase);
        _decisions = meterFactory.Create(RateLimitingExtensions.MeterName).CreateCounter<long>(
            "shop.gateway.rate_limit.decisions", "{decision}", "Rate limit decisions by policy and result (allowed, rejected).");
    }

    public async Task InvokeAsync(HttpContext context)
    {
        if (IsUnlimited(context.Request.Path))
        {
            await _next(context);
            return;
        }

        var (policy, partition) = SelectPolicy(context);
        var decision = await _limiter.AcquireAsync(policy, partition, context.RequestAborted);
        _decisions.Add(1, new("policy", policy), new("result", decision.Allowed ? "allowed" : "rejected"));

        var window = _options.Policies[policy].WindowSeconds;
        var resetSeconds = WholeSeconds(decision.ResetAfter, window);
        var headers = context.Response.Headers;
        headers["RateLimit-Policy"] = string.Create(CultureInfo.InvariantCulture, $"\"{policy}\";q={decision.Limit};w={window}");
        headers["RateLimit"] = string.Create(
            CultureInfo.InvariantCulture, $"\"{policy}\";r={decision.Remaining};t={resetSeconds}");

        if (decision.Allowed)
        {
            await _next(context);
            return;
        }

        var retryAfter = Math.Max(1, resetSeconds);
        context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
        headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
        await _problemDetails.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = new ProblemDetails
            {
                Status = StatusCodes.Status429TooManyRequests,
                Title = "Too many requests.",
                Detail = string.Create(
                    CultureInfo.InvariantCulture,
                    $"The '{policy}' rate limit of {decision.Limit} requests per {window} seconds is used up; retry after {retryAfter} seconds."),
            },
        });
    }

    private (string Policy, string Partition) SelectPolicy(HttpContext context)
    {
        var request = context.Request;
        if (HttpMethods.IsPost(request.Method) && _authPaths.Contains(NormalizePath(request.Path.Value)))
        {
            return (RateLimitingOptions.AuthPolicy, ClientIp(context));
        }

        var user = context.User;
        if (user.Identity?.IsAuthenticated == true && user.FindFirst("sub")?.Value is { Length: > 0 } subject)
        {
            return (RateLimitingOptions.UserPolicy, $"{user.FindFirst("tid")?.Value}:{subject}");
        }

        return (RateLimitingOptions.AnonymousPolicy, ClientIp(context));
    }

    private static bool IsUnlimited(PathString path)
    {
        foreach (var unlimited in UnlimitedPaths)
        {
            if (path.StartsWithSegments(unlimited))
            {
                return true;
            }
        }

        return false;
    }

    private static string ClientIp(HttpContext context) => ClientPartition.Of(context.Connection.RemoteIpAddress);

    // Routing matches paths case-insensitively and with a trailing slash, so the auth limit must too.
    private static string NormalizePath(string? path) => (path ?? string.Empty).TrimEnd('/');

    // The shared limiter keeps a permit one millisecond past its window (its clock counts whole milliseconds), which
    // would round a fresh permit up to window + 1 seconds; a client that waits the window is already later than that.
    private static long WholeSeconds(TimeSpan duration, int windowSeconds) =>
        Math.Min((long)Math.Ceiling(duration.TotalSeconds), windowSeconds);
}
