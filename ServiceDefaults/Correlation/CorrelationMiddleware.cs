using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
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
        var correlation = new CorrelationFeature(id);
        context.Features.Set(correlation);
        Activity.Current?.SetTag("correlation.id", id);
        context.Response.OnStarting(static state =>
        {
            var http = (HttpContext)state;
            http.Response.Headers[CorrelationContext.HeaderName] = http.Features.GetRequiredFeature<CorrelationFeature>().Id;
            return Task.CompletedTask;
        }, context);

        using (logger.BeginScope(correlation))
        {
            await next(context);
        }
    }
}
