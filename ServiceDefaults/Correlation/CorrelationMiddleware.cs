using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Shop.ServiceDefaults.Correlation;

/// <summary>Accepts X-Correlation-ID or creates one, echoes it, and puts it in the log scope and on the trace.</summary>
internal sealed class CorrelationMiddleware(RequestDelegate next, ILogger<CorrelationMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var incoming = context.Request.Headers[CorrelationContext.HeaderName].ToString();
        var id = CorrelationContext.IsValid(incoming) ? incoming : CorrelationContext.NewId();

        CorrelationContext.Current = id;
        context.Items[CorrelationContext.LogScopeKey] = id;
        Activity.Current?.SetTag("correlation.id", id);
        context.Response.OnStarting(() =>
        {
            context.Response.Headers[CorrelationContext.HeaderName] = id;
            return Task.CompletedTask;
        });

        using (logger.BeginScope(new Dictionary<string, object> { [CorrelationContext.LogScopeKey] = id }))
        {
            await next(context);
        }
    }
}
