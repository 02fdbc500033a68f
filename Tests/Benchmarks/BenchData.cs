using Npgsql;

namespace Shop.Benchmarks;

/// <summary>Bulk test data in inventorydb (tenant demo) and the oversell check after the run.</summary>
internal sealed class BenchData(string connectionString, List<Guid> spread, Guid hot, string folder) : IDisposable
{
    public const int MissBatchSize = 40_000;

    public IReadOnlyList<Guid> Spread => spread;

    public Guid Hot => hot;

    public string SpreadFile => Path.Combine(folder, "spread.txt");

    public string MissFile(int batch) => Path.Combine(folder, $"miss{batch}.txt");

    public static async Task<BenchData> CreateAsync(string connectionString)
    {
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        var ids = new List<Guid>();
        await using (var insert = dataSource.CreateCommand($"""
            WITH p AS (
                INSERT INTO products (id, tenant_id, sku, name, description, price_amount, price_currency, active, version, created_at, updated_at)
                SELECT gen_random_uuid(), 'demo', 'BENCH-' || g, 'Bench product ' || g, '', 10, 'EUR', true, 1, now(), now()
                FROM generate_series(1, {1001 + 4 * MissBatchSize}) g
                RETURNING id, tenant_id)
            INSERT INTO stock (product_id, tenant_id, quantity) SELECT id, tenant_id, 1000000000 FROM p RETURNING product_id
            """))
        await using (var reader = await insert.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                ids.Add(reader.GetGuid(0));
            }
        }

        // What a bulk load is followed by: the planner sees the real sizes, and autovacuum has nothing left to do on
        // these tables in the middle of a measurement (it would otherwise start on them within a minute).
        foreach (var table in new[] { "products", "stock" })
        {
            await using var vacuum = dataSource.CreateCommand($"VACUUM ANALYZE {table}");
            await vacuum.ExecuteNonQueryAsync();
        }

        var folder = Directory.CreateTempSubdirectory("shop-bench-").FullName;
        var data = new BenchData(connectionString, ids.Take(1000).ToList(), ids[^1], folder);
        await File.WriteAllLinesAsync(data.SpreadFile, data.Spread.Select(g => g.ToString()));
        for (var b = 0; b < 4; b++)
        {
            await File.WriteAllLinesAsync(data.MissFile(b), ids.Skip(1000 + b * MissBatchSize).Take(MissBatchSize).Select(g => g.ToString()));
        }

        return data;
    }

    public async Task<(long OverQuantity, long Mismatched)> CheckOversellAsync()
    {
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using var check = dataSource.CreateCommand("""
            WITH active AS (
                SELECT i.product_id, sum(i.quantity) AS quantity
                FROM reservation_items i JOIN reservations r ON r.id = i.reservation_id
                WHERE r.status = 'Active'
                GROUP BY i.product_id)
            SELECT
              (SELECT count(*) FROM stock WHERE reserved > quantity),
              (SELECT count(*) FROM stock s LEFT JOIN active a ON a.product_id = s.product_id WHERE s.reserved <> coalesce(a.quantity, 0))
            """);
        await using var reader = await check.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    /// <summary>A product of its own with <paramref name="stock"/> units, for the sell-out: every other bench product has a billion.</summary>
    public async Task<Guid> CreateSellOutProductAsync(int stock)
    {
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using var insert = dataSource.CreateCommand("""
            WITH p AS (
                INSERT INTO products (id, tenant_id, sku, name, description, price_amount, price_currency, active, version, created_at, updated_at)
                VALUES (gen_random_uuid(), 'demo', 'BENCH-SELLOUT-' || gen_random_uuid(), 'Bench sell-out', '', 10, 'EUR', true, 1, now(), now())
                RETURNING id, tenant_id)
            INSERT INTO stock (product_id, tenant_id, quantity) SELECT id, tenant_id, $1 FROM p RETURNING product_id
            """);
        insert.Parameters.Add(new() { Value = stock });
        return (Guid)(await insert.ExecuteScalarAsync())!;
    }

    /// <summary>The product's stock row, and its active reservations with the units they hold, read in one snapshot.</summary>
    public async Task<(int Quantity, int Reserved, long Reservations, long ReservedUnits)> SellOutStateAsync(Guid product)
    {
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using var read = dataSource.CreateCommand("""
            SELECT s.quantity, s.reserved,
                   (SELECT count(*) FROM reservations r JOIN reservation_items i ON i.reservation_id = r.id
                    WHERE i.product_id = $1 AND r.status = 'Active'),
                   (SELECT coalesce(sum(i.quantity), 0)::bigint FROM reservations r JOIN reservation_items i ON i.reservation_id = r.id
                    WHERE i.product_id = $1 AND r.status = 'Active')
            FROM stock s WHERE s.product_id = $1
            """);
        read.Parameters.Add(new() { Value = product });
        await using var reader = await read.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt32(0), reader.GetInt32(1), reader.GetInt64(2), reader.GetInt64(3));
    }

    /// <summary>Removes the id files, whether or not the run got as far as the check.</summary>
    public void Dispose()
    {
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
