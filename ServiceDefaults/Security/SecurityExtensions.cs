using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace Shop.ServiceDefaults.Security;

public static class SecurityExtensions
{
    /// <summary>
    /// Every endpoint requires a valid access token unless it opts out (health does). Tokens are validated
    /// here against the Gateway's published keys: a service never trusts the Gateway blindly.
    /// </summary>
    public static IHostApplicationBuilder AddShopAuthentication(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<TokenOptions>().BindConfiguration(TokenOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        // A service checks tokens against the Gateway's published keys; the Gateway registers its own source first.
        if (!builder.Services.Any(s => s.ServiceType == typeof(ISigningKeySource)))
        {
            builder.Services.AddHttpClient(JwksSigningKeySource.ClientName);
            builder.Services.AddSingleton<JwksSigningKeySource>();
            builder.Services.AddSingleton<ISigningKeySource>(services => services.GetRequiredService<JwksSigningKeySource>());
            builder.Services.AddHostedService<JwksRefresher>();
        }

        builder.Services.AddSingleton<AccessTokenValidator>();
        builder.Services.AddAuthentication(TokenAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, TokenAuthenticationHandler>(TokenAuthenticationHandler.SchemeName, null);
        builder.Services.AddAuthorizationBuilder()
            .SetFallbackPolicy(new AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build())
            .AddPolicy(ShopPolicies.User, p => p.RequireClaim(ShopClaims.Role, ShopClaims.CustomerRole, ShopClaims.AdminRole).RequireClaim(ShopClaims.Tenant))
            .AddPolicy(ShopPolicies.Admin, p => p.RequireClaim(ShopClaims.Role, ShopClaims.AdminRole).RequireClaim(ShopClaims.Tenant))
            .AddPolicy(ShopPolicies.Service, p => p.RequireClaim(ShopClaims.Role, ShopClaims.ServiceRole));
        return builder;
    }

    /// <summary>Authentication, authorization and the tenant context, in that order.</summary>
    public static WebApplication UseShopAuthentication(this WebApplication app)
    {
        app.UseAuthentication();
        app.UseAuthorization();
        app.Use((context, next) => TenantContext.SetFromUserAsync(context, () => next(context)));
        return app;
    }

    /// <summary>Calls made with this client carry the service's own token (client-credentials grant at the Gateway).</summary>
    public static IHttpClientBuilder AddServiceToken(this IHttpClientBuilder builder)
    {
        builder.Services.AddOptions<ServiceClientOptions>().BindConfiguration(ServiceClientOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddHttpClient(ServiceTokenProvider.ClientName);
        builder.Services.TryAddSingleton<ServiceTokenProvider>();
        builder.Services.TryAddTransient<ServiceTokenHandler>();
        return builder.AddHttpMessageHandler<ServiceTokenHandler>();
    }
}
