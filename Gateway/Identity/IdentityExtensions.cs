using Microsoft.Extensions.Diagnostics.HealthChecks;
using Shop.Gateway.Identity.Passwords;
using Shop.Gateway.Identity.Signing;
using Shop.Gateway.Identity.Tokens;
using Shop.Gateway.Identity.Users;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Health;
using Shop.ServiceDefaults.Security;

namespace Shop.Gateway.Identity;

public static class IdentityExtensions
{
    public static IHostApplicationBuilder AddIdentity(this IHostApplicationBuilder builder)
    {
        var development = builder.Environment.IsDevelopment();
        builder.Services.AddOptions<IdentityOptions>().BindConfiguration(IdentityOptions.Section)
            .ValidateDataAnnotations()
            .Validate(o => development || o.ServiceClients.Values.All(IsStrongSecret),
                "Outside Development every Identity:ServiceClients secret must be at least 32 characters and not a placeholder.")
            .ValidateOnStart();
        builder.Services.AddOptions<PasswordHashingOptions>().BindConfiguration(PasswordHashingOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<Argon2idPasswordHasher>();
        builder.Services.AddSingleton<IPasswordHasher>(services => services.GetRequiredService<Argon2idPasswordHasher>());

        // The Gateway validates tokens with its own keys; services fetch the same keys from the JWKS endpoint.
        builder.Services.AddSingleton<SigningKeyStore>();
        builder.Services.AddSingleton<ISigningKeySource>(services => services.GetRequiredService<SigningKeyStore>());
        builder.Services.AddHostedService<SigningKeyRefresher>();
        builder.Services.AddHealthChecks().Add(new HealthCheckRegistration("signing-keys",
            services => new SigningKeysLoaded(services.GetRequiredService<SigningKeyStore>()), HealthStatus.Unhealthy, [HealthTags.Ready]));

        builder.Services.AddSingleton<TokenIssuer>();
        builder.Services.AddScoped<SessionService>();
        builder.Services.AddSingleton(services =>
        {
            var identity = services.GetRequiredService<Microsoft.Extensions.Options.IOptions<IdentityOptions>>().Value;
            return new RevokedTokens(services.GetRequiredService<TimeProvider>(), TimeSpan.FromMilliseconds(identity.RevocationLeaseMilliseconds),
                identity.RevocationMaxEntries);
        });
        builder.Services.AddSingleton(services =>
            ActivatorUtilities.CreateInstance<RevocationSubscription>(services, builder.Configuration.GetConnectionString("redis")!));
        builder.Services.AddHostedService(services => services.GetRequiredService<RevocationSubscription>());
        builder.Services.AddSingleton<RedisTokenRevocationList>();
        builder.Services.AddSingleton<ITokenRevocationList>(services => services.GetRequiredService<RedisTokenRevocationList>());
        builder.Services.AddSingleton<LoginThrottle>();
        if (development)
        {
            builder.Services.AddScoped<IDatabaseSeeder<IdentityDbContext>, DevelopmentSeeder>();
        }

        return builder;
    }

    private static bool IsStrongSecret(string secret) =>
        secret.Length >= 32 && !secret.Contains("change", StringComparison.OrdinalIgnoreCase) && !secret.Contains("secret", StringComparison.OrdinalIgnoreCase);

    private sealed class SigningKeysLoaded(SigningKeyStore store) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(store.IsLoaded ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("Signing keys are not loaded yet."));
    }
}
