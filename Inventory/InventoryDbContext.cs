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
        modelBuilder.Entity<StockLevel>(stock =>
        {
            stock.ToTable("stock").HasKey(s => s.ProductId);
            stock.Ignore(s => s.Available);
        });
        modelBuilder.AddMessagingTables();
        modelBuilder.UseSnakeCaseNames();
    }
}
