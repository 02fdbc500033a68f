using Microsoft.EntityFrameworkCore;
using Shop.ServiceDefaults.Data;

namespace Shop.Gateway;

/// <summary>The Gateway's identity store (tenants now; users and tokens arrive with the identity feature).</summary>
public sealed class IdentityDbContext(DbContextOptions<IdentityDbContext> options) : DbContext(options)
{
    public DbSet<Tenant> Tenants => Set<Tenant>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<Tenant>().ToTable("tenants").HasKey(t => t.Id);
        modelBuilder.UseSnakeCaseNames();
    }
}

public sealed class Tenant
{
    public string Id { get; init; } = "";
    public string Name { get; init; } = "";
    public DateTimeOffset CreatedAt { get; init; }
}
