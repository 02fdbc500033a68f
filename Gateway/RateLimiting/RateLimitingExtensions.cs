using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Shop.Gateway.RateLimiting;

public static class RateLimitingExtensions
{
    /// <summary>The Meter of the rate limiter; telemetry must list it to export its instruments.</summary>
    public const string MeterName = "Shop.Gateway.RateLimiting";

    /// <summary>
    /// Rate limits shared by all replicas through Redis (needs an <c>IConnectionMultiplexer</c>), configured
    /// from the <c>RateLimiting</c> section and validated at start.
    /// </summary>
    public static IHostApplicationBuilder AddSharedRateLimiting(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<RateLimitingOptions>()
            .BindConfiguration(RateLimitingOptions.SectionName)
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RateLimitingOptions>, RateLimitingOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics();
        services.AddProblemDetails();
        services.TryAddSingleton<LocalSlidingWindowLimiter>();
        services.TryAddSingleton<RedisSlidingWindowLimiter>();
        return builder;
    }

    /// <summary>Limits every request but health and discovery endpoints; place it after authentication and forwarded headers.</summary>
    public static IApplicationBuilder UseSharedRateLimiting(this IApplicationBuilder app) =>
        app.UseMiddleware<SharedRateLimitingMiddleware>();
}
