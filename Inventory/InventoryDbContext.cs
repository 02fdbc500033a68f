using Microsoft.EntityFrameworkCore;
using Shop.Inventory.Products;
using Shop.Inventory.Stock;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Messaging;

namespace Shop.Inventory;

public sealed class InventoryDbContext(DbContextOptions<InventoryDbContext> options) : DbContext(options)
{
    public DbSet<Product> Products => Set<Product>();
    public DbSet<StockLevel> Stock => Set<StockLevel>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(InventoryDbContext).Assembly);
        modelBuilder.Entity<StockLevel>().ToTable("stock").HasKey(s => s.ProductId);
        modelBuilder.AddMessagingTables();
        modelBuilder.UseSnakeCaseNames();
    }
}
