using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Shop.Gateway.Identity.Passwords;
using Shop.Gateway.Identity.Users;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Security;

namespace Shop.Gateway.Identity;

/// <summary>Development only: the tenant "demo" with an admin whose password comes from configuration (the AppHost).</summary>
internal sealed class DevelopmentSeeder(IPasswordHasher hasher, IOptions<IdentityOptions> options, TimeProvider clock, ILogger<DevelopmentSeeder> logger)
    : IDatabaseSeeder<IdentityDbContext>
{
    public async Task SeedAsync(IdentityDbContext db, CancellationToken cancellationToken)
    {
        var seed = options.Value.Seed;
        var now = clock.GetUtcNow();
        if (!await db.Tenants.AnyAsync(t => t.Id == seed.Tenant, cancellationToken))
        {
            db.Tenants.Add(new Tenant { Id = seed.Tenant, Name = "Demo", CreatedAt = now });
            await db.SaveChangesAsync(cancellationToken);
        }

        if (string.IsNullOrEmpty(seed.AdminPassword))
        {
            logger.LogWarning("Identity:Seed:AdminPassword is not set; no admin is seeded");
            return;
        }

        var normalized = User.Normalize(seed.AdminEmail);
        if (!await db.Users.AnyAsync(u => u.TenantId == seed.Tenant && u.NormalizedEmail == normalized, cancellationToken))
        {
            db.Users.Add(User.Register(seed.Tenant, seed.AdminEmail, "Demo admin",
                await hasher.HashAsync(seed.AdminPassword, cancellationToken), ShopClaims.AdminRole, now));
            await db.SaveChangesAsync(cancellationToken);
            logger.LogInformation("Seeded admin {Email} in tenant {Tenant}", seed.AdminEmail, seed.Tenant);
        }
    }
}
