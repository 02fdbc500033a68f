using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Shop.ServiceDefaults.Health;

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
            // A replica that has never held the keys can judge no token: it is not ready until it has fetched them once.
            // After that it keeps what it has when a fetch fails, and stays ready (see JwksSigningKeySource).
            builder.Services.AddHealthChecks().Add(new HealthCheckRegistration("signing-keys",
                services => new SigningKeysFetched(services.GetRequiredService<JwksSigningKeySource>()), HealthStatus.Unhealthy, [HealthTags.Ready]));
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

    private sealed class SigningKeysFetched(JwksSigningKeySource source) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(source.FetchedAt != DateTimeOffset.MinValue ? HealthCheckResult.Healthy()
                : HealthCheckResult.Unhealthy("The Gateway's signing keys have not been fetched yet."));
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
