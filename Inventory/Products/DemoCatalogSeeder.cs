using Microsoft.EntityFrameworkCore;
using Shop.ServiceDefaults.Data;

namespace Shop.Inventory.Products;

/// <summary>A small catalog for Development, written once (skipped when any product exists).</summary>
internal sealed class DemoCatalogSeeder(TimeProvider clock) : IDatabaseSeeder<InventoryDbContext>
{
    public async Task SeedAsync(InventoryDbContext db, CancellationToken cancellationToken)
    {
        if (await db.Products.AnyAsync(cancellationToken))
        {
            return;
        }

        var now = clock.GetUtcNow();
        db.Products.AddRange(
            Product.Create("demo", "KB-001", "Mechanical keyboard", "Tenkeyless, brown switches", Money.Of(89.90m, "EUR"), now),
            Product.Create("demo", "MS-002", "Wireless mouse", "Two buttons and a wheel", Money.Of(29.50m, "EUR"), now),
            Product.Create("demo", "MN-003", "27-inch monitor", "2560x1440, 144 Hz", Money.Of(279.00m, "EUR"), now));
        await db.SaveChangesAsync(cancellationToken);
        // Each product's stock opens its adjustment history, as a product created through the API does.
        await db.Database.ExecuteSqlAsync($"""
            WITH seeded AS (
                INSERT INTO stock (product_id, tenant_id, quantity) SELECT id, tenant_id, 100 FROM products ON CONFLICT DO NOTHING
                RETURNING product_id, tenant_id, quantity, version)
            INSERT INTO stock_adjustments (id, tenant_id, product_id, delta, reason, actor, quantity_after, stock_version)
            SELECT gen_random_uuid(), tenant_id, product_id, quantity, {ProductsApi.InitialStockReason}, 'demo-catalog', quantity, version FROM seeded
            """, cancellationToken);
    }
}
