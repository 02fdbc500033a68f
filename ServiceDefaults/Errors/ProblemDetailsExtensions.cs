using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Shop.ServiceDefaults.Correlation;

namespace Shop.ServiceDefaults.Errors;

public static class ProblemDetailsExtensions
{
    /// <summary>Every error leaves as RFC 9457 problem details carrying traceId and correlationId.</summary>
    public static IServiceCollection AddDefaultProblemDetails(this IServiceCollection services)
    {
        services.AddProblemDetails(options => options.CustomizeProblemDetails = context =>
        {
            var http = context.HttpContext;
            context.ProblemDetails.Instance ??= $"{http.Request.Method} {http.Request.Path}";
            context.ProblemDetails.Extensions["traceId"] = Activity.Current?.TraceId.ToString() ?? http.TraceIdentifier;
            if ((http.Features.Get<CorrelationFeature>()?.Id ?? CorrelationContext.Current) is { } correlationId)
            {
                context.ProblemDetails.Extensions["correlationId"] = correlationId;
            }
        });
        services.AddExceptionHandler<ProblemDetailsExceptionHandler>();
        return services;
    }
}
