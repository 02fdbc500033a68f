using System.Globalization;
using Microsoft.Extensions.Options;
using Shop.ServiceDefaults.OpenApi;

namespace Shop.Gateway.Forwarding;

/// <summary>
/// Relays each service's OpenAPI document at <c>/openapi/{service}/v1.json</c> (the service's <c>/openapi/v1.json</c>,
/// through the same pools, probes and ejection as the API) and lists it in the Gateway's <c>/docs</c>.
/// </summary>
public static class ApiDocumentForwarding
{
    public static IHostApplicationBuilder AddForwardedApiDocuments(this IHostApplicationBuilder builder, params string[] services)
    {
        builder.Services.AddSingleton(new ForwardedApiDocuments(services));
        builder.Services.Configure<ApiDocsOptions>(docs =>
            docs.Links.AddRange(services.Select(service => new ApiDocumentLink(DisplayName(service), PathOf(service)))));
        return builder;
    }

    public static IEndpointRouteBuilder MapForwardedApiDocuments(this IEndpointRouteBuilder app)
    {
        if (!app.ServiceProvider.GetRequiredService<IOptions<ApiDocsOptions>>().Value.Enabled)
        {
            return app;
        }

        foreach (var service in app.ServiceProvider.GetRequiredService<ForwardedApiDocuments>().Services)
        {
            app.MapGet(PathOf(service), (HttpContext context, Forwarder forwarder) =>
            {
                context.Request.Path = OpenApiExtensions.DocumentPath;
                return forwarder.ForwardAsync(context, service);
            }).AllowAnonymous().ExcludeFromDescription().WithDisplayName($"{PathOf(service)} → {service}");
        }

        return app;
    }

    public static string PathOf(string service) => $"/openapi/{service}/{OpenApiExtensions.DocumentName}.json";

    private static string DisplayName(string service) => CultureInfo.InvariantCulture.TextInfo.ToTitleCase(service);

    private sealed record ForwardedApiDocuments(IReadOnlyList<string> Services);
}
