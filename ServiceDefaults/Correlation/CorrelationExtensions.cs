using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Shop.ServiceDefaults.Correlation;

public static class CorrelationExtensions
{
    public static IServiceCollection AddCorrelation(this IServiceCollection services)
    {
        services.TryAddTransient<CorrelationPropagationHandler>();
        return services;
    }

    public static IHttpClientBuilder AddCorrelationPropagation(this IHttpClientBuilder builder) =>
        builder.AddHttpMessageHandler<CorrelationPropagationHandler>();

    public static IApplicationBuilder UseCorrelation(this IApplicationBuilder app) =>
        app.UseMiddleware<CorrelationMiddleware>();
}
