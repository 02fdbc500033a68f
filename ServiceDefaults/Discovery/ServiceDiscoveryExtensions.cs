using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Shop.ServiceDefaults.Discovery;

public static class ServiceDiscoveryExtensions
{
    public static IServiceCollection AddServiceDiscovery(this IServiceCollection services)
    {
        services.TryAddSingleton<ServiceEndpointResolver>();
        services.TryAddTransient<ServiceDiscoveryHandler>();
        return services;
    }

    public static IHttpClientBuilder AddServiceDiscovery(this IHttpClientBuilder builder)
    {
        builder.Services.AddServiceDiscovery();
        return builder.AddHttpMessageHandler<ServiceDiscoveryHandler>();
    }
}
