using Microsoft.Extensions.Logging;
using Npgsql;

namespace Shop.ServiceDefaults.Data;

/// <summary>
/// Applies versioned SQL scripts in order, each in its own transaction, recording them in
/// <c>schema_migrations</c>. A session advisory lock makes replicas that start together take turns, and a
/// changed script that was already applied stops the start (history is immutable).
/// </summary>
public static class SqlMigrator
{
    private const long AdvisoryLockKey = 0x5348_4F50_4D49_47; // "SHOPMIG"

    /// <param name="whileLocked">Runs after the migrations, still under the lock (seeding), so replicas do not race.</param>
    public static async Task<int> MigrateAsync(NpgsqlDataSource dataSource, IEnumerable<MigrationScript> scripts, ILogger logger,
        Func<CancellationToken, Task>? whileLocked, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await ExecuteAsync(connection, null, $"SELECT pg_advisory_lock({AdvisoryLockKey})", cancellationToken);
        try
        {
            await ExecuteAsync(connection, null, """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    module      text        NOT NULL,
                    version     integer     NOT NULL,
                    name        text        NOT NULL,
                    checksum    text        NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (module, version))
                """, cancellationToken);

            var applied = new Dictionary<(string, int), string>();
            await using (var read = new NpgsqlCommand("SELECT module, version, checksum FROM schema_migrations", connection))
            await using (var reader = await read.ExecuteReaderAsync(cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                {
                    applied[(reader.GetString(0), reader.GetInt32(1))] = reader.GetString(2);
                }
            }

            var count = 0;
            foreach (var script in scripts)
            {
                if (applied.TryGetValue((script.Module, script.Version), out var checksum))
                {
                    if (checksum != script.Checksum)
                    {
                        throw new InvalidOperationException(
                            $"Migration {script.Module}/{script.Name} was changed after it was applied. Add a new migration instead.");
                    }

                    continue;
                }

                await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                await ExecuteAsync(connection, transaction, script.Sql, cancellationToken);
                await using (var record = new NpgsqlCommand(
                    "INSERT INTO schema_migrations (module, version, name, checksum) VALUES ($1, $2, $3, $4)", connection, transaction))
                {
                    record.Parameters.Add(new() { Value = script.Module });
                    record.Parameters.Add(new() { Value = script.Version });
                    record.Parameters.Add(new() { Value = script.Name });
                    record.Parameters.Add(new() { Value = script.Checksum });
                    await record.ExecuteNonQueryAsync(cancellationToken);
                }

                await transaction.CommitAsync(cancellationToken);
                logger.LogInformation("Applied migration {Module}/{Migration}", script.Module, script.Name);
                count++;
            }

            if (whileLocked is not null)
            {
                await whileLocked(cancellationToken);
            }

            return count;
        }
        finally
        {
            await ExecuteAsync(connection, null, $"SELECT pg_advisory_unlock({AdvisoryLockKey})", CancellationToken.None);
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
