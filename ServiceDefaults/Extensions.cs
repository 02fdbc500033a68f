using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Shop.ServiceDefaults.Correlation;
using Shop.ServiceDefaults.Discovery;
using Shop.ServiceDefaults.Errors;
using Shop.ServiceDefaults.Health;
using Shop.ServiceDefaults.Http;
using Shop.ServiceDefaults.OpenApi;
using Shop.ServiceDefaults.Resilience;
using Shop.ServiceDefaults.Telemetry;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// What every service shares, in the shape of the Aspire ServiceDefaults template: telemetry, health,
/// service discovery, HTTP resilience, correlation ids and problem details.
/// </summary>
public static class Extensions
{
    public const string HealthEndpointPath = "/health";
    public const string AlivenessEndpointPath = "/alive";

    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.ConfigureOpenTelemetry();
        builder.AddDefaultHealthChecks();

        builder.Services.AddServiceDiscovery();
        builder.Services.AddCorrelation();
        builder.Services.ConfigureHttpClientDefaults(http =>
        {
            http.AddStandardResilienceHandler();
            http.AddServiceDiscovery();
            http.AddCorrelationPropagation();
        });

        builder.Services.AddDefaultProblemDetails();
        // A value that cannot be bound (a query string that is not a number, a body that is not the expected JSON)
        // becomes an exception that the problem details handler explains. Without this, outside Development the
        // framework answers an empty 400 and logs the reason only at debug level.
        builder.Services.PostConfigure<RouteHandlerOptions>(options => options.ThrowOnBadRequest = true);
        builder.Services.ConfigureHttpJsonOptions(json =>
        {
            json.SerializerOptions.Converters.Add(new TextWithoutNul());
            // {"quantity":1,"quantity":1000} says two things; which one counts should not depend on the parser reading it.
            json.SerializerOptions.AllowDuplicateProperties = false;
        });
        builder.AddDefaultOpenApi();

        // Bodies are small JSON documents here; anything larger is refused before it is read.
        var maxBody = builder.Configuration.GetValue<long?>("Kestrel:Limits:MaxRequestBodySize") ?? 1024 * 1024;
        builder.Services.Configure<KestrelServerOptions>(kestrel => kestrel.Limits.MaxRequestBodySize = maxBody);
        return builder;
    }

    public static TBuilder AddDefaultHealthChecks<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy(), [HealthTags.Live]);
        // The health check service logs an error for every probe that finds a check unhealthy; HealthTransitions
        // logs the changes instead, with the exception when a check threw.
        builder.Services.AddSingleton<HealthTransitions>();
        builder.Logging.AddFilter("Microsoft.Extensions.Diagnostics.HealthChecks.DefaultHealthCheckService", LogLevel.None);
        return builder;
    }

    public static WebApplication MapDefaultEndpoints(this WebApplication app)
    {
        app.UseRoutingWithHead();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseCorrelation();
        app.UseMiddleware<RequestBodyGuard>();
        app.UseMiddleware<HttpServerSpanMiddleware>();

        // Readiness: every registered check, dependencies included. Liveness: only the process itself.
        app.MapHealthChecks(HealthEndpointPath, new HealthCheckOptions { ResponseWriter = HealthResponseWriter.WriteAsync }).AllowAnonymous();
        app.MapHealthChecks(AlivenessEndpointPath, new HealthCheckOptions
        {
            Predicate = check => check.Tags.Contains(HealthTags.Live),
            ResponseWriter = HealthResponseWriter.WriteAsync,
        }).AllowAnonymous();
        app.MapDefaultOpenApi();
        return app;
    }
}
