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
        if (Activity.Current is not { OperationName: "Microsoft.AspNetCore.Hosting.HttpRequestIn" } activity)
        {
            await next(context);
            return;
        }

        try
        {
            await next(context);
        }
        catch when (!context.Response.HasStarted)
        {
            // The handler outside this middleware answers for the exception: the span gets the status it sends.
            context.Response.OnStarting(() =>
            {
                SetStatus(activity, context.Response.StatusCode);
                return Task.CompletedTask;
            });
            throw;
        }
        finally
        {
            var route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText;
            activity.DisplayName = route is null ? context.Request.Method : $"{context.Request.Method} {route}";
            activity.SetTag("http.request.method", context.Request.Method);
            activity.SetTag("http.route", route);
            activity.SetTag("url.path", context.Request.Path.Value);
            SetStatus(activity, context.Response.StatusCode);
        }
    }

    private static void SetStatus(Activity activity, int status)
    {
        activity.SetTag("http.response.status_code", status);
        if (status >= 500)
        {
            activity.SetStatus(ActivityStatusCode.Error);
        }
    }
}
