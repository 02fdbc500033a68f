using Microsoft.EntityFrameworkCore;
using Shop.Gateway.Identity.Signing;
using Shop.Gateway.Identity.Tokens;
using Shop.Gateway.Identity.Users;
using Shop.ServiceDefaults.Data;

namespace Shop.Gateway;

/// <summary>The Gateway's identity store: tenants, users, refresh-token families and signing keys.</summary>
public sealed class IdentityDbContext(DbContextOptions<IdentityDbContext> options) : DbContext(options)
{
    public DbSet<Tenant> Tenants => Set<Tenant>();
    public DbSet<User> Users => Set<User>();
    public DbSet<RefreshToken> RefreshTokens => Set<RefreshToken>();
    public DbSet<SigningKey> SigningKeys => Set<SigningKey>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<Tenant>().ToTable("tenants").HasKey(t => t.Id);
        modelBuilder.Entity<User>(user =>
        {
            user.ToTable("users").HasKey(u => u.Id);
            user.Property(u => u.Version).IsConcurrencyToken();
        });
        modelBuilder.Entity<RefreshToken>().ToTable("refresh_tokens").HasKey(t => t.Id);
        modelBuilder.Entity<SigningKey>().ToTable("signing_keys").HasKey(k => k.Kid);
        modelBuilder.UseSnakeCaseNames();
    }
}

public sealed class Tenant
{
    public string Id { get; init; } = "";
    public string Name { get; init; } = "";
    public DateTimeOffset CreatedAt { get; init; }
}
