using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Shop.Orders.Orders;

internal sealed class OrderConfiguration : IEntityTypeConfiguration<Order>
{
    public void Configure(EntityTypeBuilder<Order> order)
    {
        order.ToTable("orders");
        order.HasKey(o => o.Id);
        order.Property(o => o.Status).HasConversion<string>();
        order.Property(o => o.Total).HasPrecision(12, 2);
        order.Property(o => o.Currency).HasMaxLength(3).IsFixedLength();
        order.Property(o => o.Version).IsConcurrencyToken();
        order.OwnsMany(o => o.Lines, line =>
        {
            line.ToTable("order_items");
            line.WithOwner().HasForeignKey("OrderId");
            line.HasKey("OrderId", nameof(OrderLine.ProductId));
            line.Property(l => l.UnitPrice).HasPrecision(12, 2);
            line.Ignore(l => l.Subtotal);
        });
        order.Navigation(o => o.Lines).HasField("_lines").UsePropertyAccessMode(PropertyAccessMode.Field);
        order.OwnsMany(o => o.History, change =>
        {
            change.ToTable("order_status_history");
            change.WithOwner().HasForeignKey("OrderId");
            change.HasKey(c => c.Id);
            change.Property(c => c.Id).UseIdentityAlwaysColumn();
            change.Property(c => c.Status).HasConversion<string>();
        });
        order.Navigation(o => o.History).HasField("_history").UsePropertyAccessMode(PropertyAccessMode.Field);
        order.Ignore(o => o.IsTerminal);
        order.Ignore(o => o.CancellationRequested);
    }
}
