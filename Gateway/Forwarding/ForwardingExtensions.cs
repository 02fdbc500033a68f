namespace Shop.Gateway.Forwarding;

public static class ForwardingExtensions
{
    public static IHostApplicationBuilder AddForwarding(this IHostApplicationBuilder builder)
    {
        // No cookies, no automatic decompression and no redirects: responses pass through as the service sent them.
        builder.Services.AddHttpClient(Forwarder.ClientName)
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler
            {
                UseCookies = false,
                AllowAutoRedirect = false,
                AutomaticDecompression = System.Net.DecompressionMethods.None,
                PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            });
        builder.Services.AddSingleton<Forwarder>();
        return builder;
    }

    /// <summary>Forwards <paramref name="prefix"/> and everything below it to <paramref name="service"/>.</summary>
    public static IEndpointRouteBuilder MapForwarder(this IEndpointRouteBuilder app, string prefix, string service)
    {
        Task Forward(HttpContext context, Forwarder forwarder) => forwarder.ForwardAsync(context, service);
        app.Map(prefix, Forward).WithTags("Forwarded").WithDisplayName($"{prefix} → {service}");
        app.Map(prefix + "/{**rest}", Forward).WithTags("Forwarded").WithDisplayName($"{prefix}/** → {service}");
        return app;
    }
}
