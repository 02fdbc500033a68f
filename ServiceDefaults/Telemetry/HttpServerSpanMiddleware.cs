using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Shop.ServiceDefaults.Telemetry;

/// <summary>
/// Names the ASP.NET Core request span "METHOD route" and adds the HTTP semantic-convention tags, the work
/// OpenTelemetry.Instrumentation.AspNetCore would do (that package is not available here).
/// </summary>
internal sealed class HttpServerSpanMiddleware(RequestDelegate next)
{
    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
        }
        finally
        {
            if (Activity.Current is { } activity && activity.OperationName == "Microsoft.AspNetCore.Hosting.HttpRequestIn")
            {
                var route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText;
                activity.DisplayName = route is null ? context.Request.Method : $"{context.Request.Method} {route}";
                activity.SetTag("http.request.method", context.Request.Method);
                activity.SetTag("http.route", route);
                activity.SetTag("url.path", context.Request.Path.Value);
                activity.SetTag("http.response.status_code", context.Response.StatusCode);
                if (context.Response.StatusCode >= 500)
                {
                    activity.SetStatus(ActivityStatusCode.Error);
                }
            }
        }
    }
}
