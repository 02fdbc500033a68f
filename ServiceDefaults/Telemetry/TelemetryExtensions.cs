using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Shop.ServiceDefaults.Telemetry;

/// <summary>
/// OpenTelemetry without OpenTelemetry.Extensions.Hosting (not available here): the providers are built with
/// the SDK's builders and owned by the container, and the instrumentation is the ActivitySources and Meters
/// that .NET 10, Npgsql and RabbitMQ.Client emit themselves.
/// </summary>
public static class TelemetryExtensions
{
    private static readonly string[] TraceSources =
    [
        "Microsoft.AspNetCore",
        "System.Net.Http",
        "Npgsql",
        "RabbitMQ.Client.Publisher",
        "RabbitMQ.Client.Subscriber",
        ShopDiagnostics.SourceName,
    ];

    private static readonly string[] Meters =
    [
        "Microsoft.AspNetCore.Hosting",
        "Microsoft.AspNetCore.Server.Kestrel",
        "Microsoft.AspNetCore.Routing",
        "Microsoft.AspNetCore.Diagnostics",
        "Microsoft.AspNetCore.RateLimiting",
        "System.Net.Http",
        "System.Net.NameResolution",
        "System.Runtime",
        "Npgsql",
        ShopDiagnostics.SourceName,
        ShopDiagnostics.SourceName + ".*",
    ];

    public static TBuilder ConfigureOpenTelemetry<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Logging.AddJsonConsole(options =>
        {
            options.IncludeScopes = true;
            options.UseUtcTimestamp = true;
            options.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
        });
        builder.Logging.Configure(options =>
            options.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId);

        var serviceName = builder.Configuration["OTEL_SERVICE_NAME"] ?? builder.Environment.ApplicationName;
        var exportOtlp = !string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);

        // The SDK's detector reads the variable itself, never the configuration: so does the check for a name.
        var resource = ServiceResource(serviceName, Environment.GetEnvironmentVariable("OTEL_RESOURCE_ATTRIBUTES"));

        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
            logging.SetResourceBuilder(resource);
            if (exportOtlp)
            {
                logging.AddOtlpExporter();
            }
        });

        var tracing = Sdk.CreateTracerProviderBuilder()
            .SetResourceBuilder(resource)
            .AddSource(TraceSources)
            .SetSampler(SamplerFromEnvironment(builder.Configuration["OTEL_TRACES_SAMPLER"], builder.Configuration["OTEL_TRACES_SAMPLER_ARG"]));
        var metrics = Sdk.CreateMeterProviderBuilder()
            .SetResourceBuilder(resource)
            .AddMeter(Meters);
        if (exportOtlp)
        {
            tracing.AddOtlpExporter();
            metrics.AddOtlpExporter();
        }

        // Registered as singletons so the container disposes (and flushes) them on shutdown. They are
        // resolved once at start by the hosted service below: a provider that is never built never listens.
        builder.Services.AddSingleton(_ => tracing.Build());
        builder.Services.AddSingleton(_ => metrics.Build());
        builder.Services.AddHostedService<TelemetryActivator>();
        return builder;
    }

    /// <summary>
    /// The resource every signal is described by. CreateDefault reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    /// itself; the AppHost names each replica there (service.instance.id). A replica started otherwise (a deployment from
    /// the manifest, which runs several of each) gets an id of its own, so that its telemetry is not mixed with its
    /// siblings'. Generated when the attributes already name one, it would override the AppHost's.
    /// </summary>
    internal static ResourceBuilder ServiceResource(string serviceName, string? resourceAttributes)
    {
        var named = resourceAttributes?.Split(',').Any(attribute =>
            attribute.Split('=', 2)[0].Trim().Equals("service.instance.id", StringComparison.Ordinal)) ?? false;
        return ResourceBuilder.CreateDefault().AddService(serviceName, autoGenerateServiceInstanceId: !named);
    }

    /// <summary>
    /// The sampler named by the standard OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG variables; by default every
    /// trace is kept (parentbased_always_on), which suits development. Under load, sample: e.g.
    /// <c>parentbased_traceidratio</c> with <c>0.1</c>. A caller's sampling decision is always honoured.
    /// </summary>
    public static Sampler SamplerFromEnvironment(string? name, string? argument)
    {
        var ratio = double.TryParse(argument, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var parsed)
            && parsed is >= 0 and <= 1 ? parsed : 1.0;
        return name?.Trim().ToLowerInvariant() switch
        {
            null or "" or "parentbased_always_on" => new ParentBasedSampler(new AlwaysOnSampler()),
            "always_on" => new AlwaysOnSampler(),
            "always_off" => new AlwaysOffSampler(),
            "parentbased_always_off" => new ParentBasedSampler(new AlwaysOffSampler()),
            "traceidratio" => new TraceIdRatioBasedSampler(ratio),
            "parentbased_traceidratio" => new ParentBasedSampler(new TraceIdRatioBasedSampler(ratio)),
            var other => throw new InvalidOperationException($"OTEL_TRACES_SAMPLER '{other}' is not supported."),
        };
    }

    private sealed class TelemetryActivator(TracerProvider tracerProvider, MeterProvider meterProvider) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            GC.KeepAlive(tracerProvider);
            GC.KeepAlive(meterProvider);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
