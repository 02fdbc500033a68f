using System.IO.Compression;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.AspNetCore.ResponseCompression;
using Shop.ServiceDefaults.OpenApi;

namespace Shop.Gateway.Edge;

/// <summary>What the public edge does before anything else: client address, CORS, security headers, compression.</summary>
public static class EdgeExtensions
{
    private const string CorsPolicy = "configured-origins";

    private const string ApiContentSecurityPolicy = "default-src 'none'; frame-ancestors 'none'";

    // Swagger UI loads its scripts and styles from /docs itself but sets inline styles and data: images; nothing else is relaxed.
    private const string DocsContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
        + "base-uri 'none'; frame-ancestors 'none'";

    public static IHostApplicationBuilder AddEdgeProtection(this IHostApplicationBuilder builder)
    {
        // Only a trusted proxy may set the client address, and only its own hop is taken. The lists are set here in full:
        // ASPNETCORE_FORWARDEDHEADERS_ENABLED (which an Aspire deployment sets) empties them, trusting every address, and
        // runs the middleware once more before ours, so a client's own X-Forwarded-For entry became its address.
        var trusted = (builder.Configuration.GetSection(ForwardedHeadersSettings.Section).Get<ForwardedHeadersSettings>() ?? new()).Trusted();
        builder.Services.Configure<ForwardedHeadersOptions>(options =>
        {
            options.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
            options.ForwardLimit = 1;
            options.KnownProxies.Clear();
            options.KnownIPNetworks.Clear();
            foreach (var network in trusted)
            {
                options.KnownIPNetworks.Add(network);
            }
        });

        var origins = builder.Configuration.GetSection(CorsSettings.Section).Get<CorsSettings>()?.AllowedOrigins ?? [];
        builder.Services.AddCors(cors => cors.AddPolicy(CorsPolicy, policy => policy
            .WithOrigins(origins)
            .WithMethods("GET", "POST", "PUT", "DELETE")
            .WithHeaders("Authorization", "Content-Type", "Idempotency-Key", "If-Match", "X-Correlation-ID")
            .WithExposedHeaders("Location", "ETag", "Retry-After", "RateLimit", "RateLimit-Policy", "X-Correlation-ID")
            .SetPreflightMaxAge(TimeSpan.FromMinutes(10))));

        builder.Services.AddResponseCompression(options =>
        {
            options.EnableForHttps = true;
            options.Providers.Add<BrotliCompressionProvider>();
            options.Providers.Add<GzipCompressionProvider>();
            options.MimeTypes = ["application/json", "application/problem+json", "text/plain"];
        });
        builder.Services.Configure<BrotliCompressionProviderOptions>(o => o.Level = CompressionLevel.Fastest);
        builder.Services.Configure<GzipCompressionProviderOptions>(o => o.Level = CompressionLevel.Fastest);
        return builder;
    }

    public static WebApplication UseEdgeProtection(this WebApplication app)
    {
        // Under ASPNETCORE_FORWARDEDHEADERS_ENABLED the host already runs the middleware first, with these options: a
        // second run would take a second hop whenever the first one named a trusted address (127.0.0.1, say).
        if (!string.Equals(app.Configuration["FORWARDEDHEADERS_ENABLED"], "true", StringComparison.OrdinalIgnoreCase))
        {
            app.UseForwardedHeaders();
        }

        app.Use(async (context, next) =>
        {
            var headers = context.Response.Headers;
            headers.XContentTypeOptions = "nosniff";
            headers.XFrameOptions = "DENY";
            headers["Referrer-Policy"] = "no-referrer";
            headers.ContentSecurityPolicy = context.Request.Path.StartsWithSegments(OpenApiExtensions.UiPath, StringComparison.OrdinalIgnoreCase)
                ? DocsContentSecurityPolicy
                : ApiContentSecurityPolicy;
            if (context.Request.IsHttps)
            {
                headers.StrictTransportSecurity = "max-age=31536000";
            }

            await next(context);
        });
        app.UseCors(CorsPolicy);
        app.UseResponseCompression();
        return app;
    }

    /// <summary>
    /// A request that presents a bearer token the Gateway cannot accept (bad signature, expired, revoked by
    /// logout) is refused here, on every replica, before it is forwarded anywhere.
    /// </summary>
    public static WebApplication RejectInvalidTokens(this WebApplication app)
    {
        app.Use(async (context, next) =>
        {
            if (context.Request.Headers.Authorization.ToString().StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
                && context.User.Identity?.IsAuthenticated != true)
            {
                await context.ChallengeAsync();
                return;
            }

            await next(context);
        });
        return app;
    }
}
