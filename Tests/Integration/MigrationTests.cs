using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Shop.ServiceDefaults.Data;

namespace Shop.Tests.Integration;

/// <summary>The migrator against the app's PostgreSQL server, in a database of its own that it drops.</summary>
[Collection(AppCollection.Name)]
public sealed class MigrationTests(AppFixture fixture)
{
    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_replica_waiting_for_another_to_migrate_and_a_slow_script_both_outlast_the_statement_timeout()
    {
        var database = $"migrations_{Guid.NewGuid():N}";
        var server = new NpgsqlConnectionStringBuilder(fixture.App.GetConnectionString("postgres")) { Database = "postgres", Pooling = false };
        await ExecuteAsync(server.ConnectionString, $"CREATE DATABASE {database}");
        try
        {
            // The services' statement timeout, made short: 300 ms.
            var target = new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = database, Options = "-c statement_timeout=300" };
            await using var dataSource = NpgsqlDataSource.Create(target.ConnectionString);
            MigrationScript[] scripts =
            [
                new("test", 1, "0001_slow.sql", "SELECT pg_sleep(0.6); CREATE TABLE slow_made (id int PRIMARY KEY);"),
            ];

            // Another replica is migrating: it holds the lock for 1.5 s, five times the timeout.
            Task<int> migrating;
            await using (var other = new NpgsqlConnection(target.ConnectionString))
            {
                await other.OpenAsync(Cancellation);
                await using (var take = new NpgsqlCommand($"SELECT pg_advisory_lock({SqlMigrator.AdvisoryLockKey})", other))
                {
                    await take.ExecuteNonQueryAsync(Cancellation);
                }

                migrating = SqlMigrator.MigrateAsync(dataSource, scripts, NullLogger.Instance, null, Cancellation);
                await Task.Delay(TimeSpan.FromSeconds(1.5), Cancellation);
                Assert.False(migrating.IsCompleted, $"the migrator did not wait for the lock: {migrating.Exception?.InnerException?.Message}");
            }

            Assert.Equal(1, await migrating.WaitAsync(TimeSpan.FromSeconds(30), Cancellation));
            await using var check = new NpgsqlConnection(target.ConnectionString);
            await check.OpenAsync(Cancellation);
            await using var command = new NpgsqlCommand(
                "SELECT (SELECT count(*) FROM schema_migrations WHERE module = 'test') + (SELECT count(*) FROM pg_tables WHERE tablename = 'slow_made')", check);
            Assert.Equal(2L, await command.ExecuteScalarAsync(Cancellation));

            // The session keeps its own timeout afterwards (the services return connections to the pool unreset).
            await using var session = await dataSource.OpenConnectionAsync(Cancellation);
            await using var show = new NpgsqlCommand("SHOW statement_timeout", session);
            Assert.Equal("300ms", await show.ExecuteScalarAsync(Cancellation));
        }
        finally
        {
            await ExecuteAsync(server.ConnectionString, $"DROP DATABASE IF EXISTS {database} WITH (FORCE)");
        }
    }

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(Cancellation);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(Cancellation);
    }
}
