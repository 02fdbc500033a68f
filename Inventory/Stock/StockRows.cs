using Npgsql;

namespace Shop.Inventory.Stock;

/// <summary>Stock rows read in plain SQL: select <see cref="Columns"/> (or <see cref="ColumnsOfS"/>, for a table aliased <c>s</c>) and read each with <see cref="Read"/>.</summary>
public static class StockRows
{
    public const string Columns = "product_id, tenant_id, quantity, reserved, version, updated_at";
    public const string ColumnsOfS = "s.product_id, s.tenant_id, s.quantity, s.reserved, s.version, s.updated_at";

    public static StockLevel Read(NpgsqlDataReader reader) =>
        StockLevel.Load(reader.GetGuid(0), reader.GetString(1), reader.GetInt32(2), reader.GetInt32(3), reader.GetInt64(4),
            reader.GetFieldValue<DateTimeOffset>(5));
}
