using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Shop.ServiceDefaults.Resilience;

public static class ResilienceExtensions
{
    public static IHttpClientBuilder AddStandardResilienceHandler(this IHttpClientBuilder builder)
    {
        builder.Services.AddOptions<HttpResilienceOptions>()
            .BindConfiguration("Resilience:Http")
            .Validate(o => o.MaxRetryAttempts is >= 0 and <= 10
                && o.AttemptTimeout > TimeSpan.Zero && o.TotalRequestTimeout >= o.AttemptTimeout
                && o.CircuitBreakerFailureRatio is > 0 and <= 1 && o.CircuitBreakerMinimumThroughput >= 2
                && o.CircuitBreakerBreakDuration >= TimeSpan.FromMilliseconds(500),
                "Resilience:Http is out of range (see HttpResilienceOptions).")
            .ValidateOnStart();
        builder.Services.TryAddSingleton<HttpResiliencePipelines>();
        builder.Services.TryAddTransient<StandardResilienceHandler>();
        return builder.AddHttpMessageHandler<StandardResilienceHandler>();
    }
}
