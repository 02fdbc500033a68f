using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Shop.ServiceDefaults.Resilience;

public static class ResilienceExtensions
{
    public static IHttpClientBuilder AddStandardResilienceHandler(this IHttpClientBuilder builder)
    {
        builder.Services.AddOptions<HttpResilienceOptions>().BindConfiguration("Resilience:Http");
        builder.Services.TryAddSingleton<HttpResiliencePipelines>();
        builder.Services.TryAddTransient<StandardResilienceHandler>();
        return builder.AddHttpMessageHandler<StandardResilienceHandler>();
    }
}
