using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Shop.ServiceDefaults.Data;

/// <summary>
/// Applies versioned SQL scripts in order, each in its own transaction (or, when marked
/// <see cref="MigrationScript.NoTransactionMarker"/>, statement by statement), recording them in
/// <c>schema_migrations</c>. A session advisory lock makes replicas that start together take turns, and a
/// changed script that was already applied stops the start (history is immutable). Neither the wait for the lock
/// nor a script is bound by the service's statement timeout: a replica that waits while another migrates, or a
/// script that builds an index on a large table, may take longer than any request should, and failing there
/// would stop the service.
/// </summary>
public static class SqlMigrator
{
    internal const long AdvisoryLockKey = 0x5348_4F50_4D49_47; // "SHOPMIG"
    private static readonly TimeSpan LockPollInterval = TimeSpan.FromMilliseconds(250);

    /// <param name="whileLocked">Runs after the migrations, still under the lock (seeding), so replicas do not race.</param>
    public static async Task<int> MigrateAsync(NpgsqlDataSource dataSource, IEnumerable<MigrationScript> scripts, ILogger logger,
        Func<CancellationToken, Task>? whileLocked, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        // Asked again and again rather than waited for in one statement, which the statement timeout would cancel.
        var waited = Stopwatch.StartNew();
        var nextReport = TimeSpan.FromSeconds(10);
        while (!await TryLockAsync(connection, cancellationToken))
        {
            if (waited.Elapsed > nextReport)
            {
                logger.LogInformation("Waiting for another replica to finish migrating ({Waited:F0} s so far)", waited.Elapsed.TotalSeconds);
                nextReport += TimeSpan.FromSeconds(10);
            }

            await Task.Delay(LockPollInterval, cancellationToken);
        }

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

                if (script.RunsInTransaction)
                {
                    await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                    await ExecuteAsync(connection, transaction, "SET LOCAL statement_timeout = 0", cancellationToken);
                    await ExecuteAsync(connection, transaction, script.Sql, cancellationToken);
                    await RecordAsync(connection, transaction, script, cancellationToken);
                    await transaction.CommitAsync(cancellationToken);
                }
                else
                {
                    await ApplyOutsideTransactionAsync(connection, script, cancellationToken);
                }

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
            await UnlockAsync(connection);
        }
    }

    /// <summary>
    /// Gives the lock back. A session that broke took its lock with it, and its error, not the unlock's, is the one to
    /// report; a session that could not be unlocked is not used again, as it would hold the lock in the pool for good.
    /// </summary>
    private static async Task UnlockAsync(NpgsqlConnection connection)
    {
        if (connection.State != System.Data.ConnectionState.Open)
        {
            return;
        }

        try
        {
            await ExecuteAsync(connection, null, $"SELECT pg_advisory_unlock({AdvisoryLockKey})", CancellationToken.None);
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException)
        {
            NpgsqlConnection.ClearPool(connection);
        }
    }

    /// <summary>
    /// Each statement on its own, committed as it ends, then the record. A failure part-way leaves what ran before it,
    /// and the script runs again from its first statement at the next start: such a script must be safe to run again
    /// (<c>DROP INDEX CONCURRENTLY IF EXISTS</c> first removes the invalid index a failed build leaves behind).
    /// </summary>
    private static async Task ApplyOutsideTransactionAsync(NpgsqlConnection connection, MigrationScript script, CancellationToken cancellationToken)
    {
        var statements = script.Statements();
        // Whatever the session is set to here (no timeout, and any SET of the script's own) lasts until RESET ALL, which
        // returns it to the data source's settings from the connection string: pooled sessions are not reset on return.
        await ExecuteAsync(connection, null, "SET statement_timeout = 0", cancellationToken);
        var applied = false;
        try
        {
            foreach (var statement in statements)
            {
                await ExecuteAsync(connection, null, statement, cancellationToken);
            }

            await RecordAsync(connection, null, script, cancellationToken);
            applied = true;
        }
        finally
        {
            if (connection.State == System.Data.ConnectionState.Open)
            {
                try
                {
                    await ExecuteAsync(connection, null, "RESET ALL", CancellationToken.None);
                }
                catch (NpgsqlException) when (!applied)
                {
                    // The script's own error is the one to report.
                }
            }
        }
    }

    private static async Task RecordAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, MigrationScript script,
        CancellationToken cancellationToken)
    {
        await using var record = new NpgsqlCommand(
            "INSERT INTO schema_migrations (module, version, name, checksum) VALUES ($1, $2, $3, $4)", connection, transaction);
        record.Parameters.Add(new() { Value = script.Module });
        record.Parameters.Add(new() { Value = script.Version });
        record.Parameters.Add(new() { Value = script.Name });
        record.Parameters.Add(new() { Value = script.Checksum });
        await record.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<bool> TryLockAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"SELECT pg_try_advisory_lock({AdvisoryLockKey})", connection);
        return (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken)
    {
        // No client-side timeout either (Npgsql's default is 30 s); cancellation still stops it.
        await using var command = new NpgsqlCommand(sql, connection, transaction) { CommandTimeout = 0 };
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
