namespace Shop.Gateway.Forwarding;

public static class ForwardingExtensions
{
    public static IHostApplicationBuilder AddForwarding(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<ForwardingOptions>().BindConfiguration(ForwardingOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<DestinationPools>();
        builder.Services.AddSingleton<DestinationProber>();
        builder.Services.AddSingleton<Forwarder>();
        builder.Services.AddHostedService<ActiveHealthChecker>();
        return builder;
    }

    /// <summary>
    /// Forwards <paramref name="prefix"/> and everything below it to <paramref name="service"/>. The Gateway does not
    /// authorize these calls itself (the service does, with its own validation of the token), but a request whose
    /// token is invalid or revoked is refused here (see <c>RejectInvalidTokens</c>).
    /// </summary>
    public static IEndpointRouteBuilder MapForwarder(this IEndpointRouteBuilder app, string prefix, string service)
    {
        Task Forward(HttpContext context, Forwarder forwarder) => forwarder.ForwardAsync(context, service);
        app.Map(prefix, Forward).AllowAnonymous().WithTags("Forwarded").WithDisplayName($"{prefix} → {service}");
        app.Map(prefix + "/{**rest}", Forward).AllowAnonymous().WithTags("Forwarded").WithDisplayName($"{prefix}/** → {service}");
        return app;
    }

    /// <summary>
    /// The dead-letter admin API of each consuming service, one prefix per service:
    /// <c>/v1/admin/dead-letters/{service}/…</c> is the service's <c>/v1/admin/dead-letters/…</c> (the service
    /// checks the admin role).
    /// </summary>
    public static IEndpointRouteBuilder MapDeadLetterAdminForwarders(this IEndpointRouteBuilder app, params string[] services)
    {
        foreach (var service in services)
        {
            var prefix = $"/v1/admin/dead-letters/{service}";
            Task Forward(HttpContext context, Forwarder forwarder)
            {
                context.Request.Path = "/v1/admin/dead-letters" + context.Request.Path.Value![prefix.Length..];
                return forwarder.ForwardAsync(context, service);
            }

            app.Map(prefix, Forward).AllowAnonymous().WithTags("Forwarded").WithDisplayName($"{prefix} → {service}");
            app.Map(prefix + "/{**rest}", Forward).AllowAnonymous().WithTags("Forwarded").WithDisplayName($"{prefix}/** → {service}");
        }

        return app;
    }
}
