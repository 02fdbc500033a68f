using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
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
        await InScratchDatabaseAsync(async (server, database) =>
        {
            // The services' statement timeout, made short: 300 ms.
            var target = new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = database, Options = "-c statement_timeout=300" };
            // The migrator's sessions are pooled and not reset, as in the services; the other replica's is not pooled, so
            // closing it releases its advisory lock.
            await using var dataSource = NpgsqlDataSource.Create(
                new NpgsqlConnectionStringBuilder(target.ConnectionString) { Pooling = true, NoResetOnClose = true, MaxPoolSize = 1 }.ConnectionString);
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
            await using var show = new NpgsqlCommand("SELECT current_setting('statement_timeout') || ' ' || current_setting('maintenance_work_mem')", session);
            var defaults = await ScalarAsync(server.ConnectionString, "SELECT '300ms ' || current_setting('maintenance_work_mem')");
            Assert.Equal(defaults, await show.ExecuteScalarAsync(Cancellation));
        });
    }

    [Fact]
    public async Task A_script_marked_no_transaction_builds_an_index_concurrently_and_runs_again_after_a_failed_build()
    {
        await InScratchDatabaseAsync(async (server, database) =>
        {
            // As the services' data sources: pooled sessions are not reset when they go back to the pool.
            var target = new NpgsqlConnectionStringBuilder(server.ConnectionString)
            {
                Database = database, Options = "-c statement_timeout=300", Pooling = true, NoResetOnClose = true, MaxPoolSize = 1,
            };
            await using var dataSource = NpgsqlDataSource.Create(target.ConnectionString);
            MigrationScript table = new("test", 1, "0001_items", "CREATE TABLE items (id int PRIMARY KEY, code text NOT NULL); INSERT INTO items VALUES (1, 'a'), (2, 'a');");
            MigrationScript index = new("test", 2, "0002_unique_code", """
                -- migrate: no-transaction
                SELECT pg_sleep(0.6);
                DROP INDEX CONCURRENTLY IF EXISTS ux_items_code; CREATE UNIQUE INDEX CONCURRENTLY ux_items_code ON items (code); -- the build; with a note
                SET maintenance_work_mem = '17MB';
                """);

            // Inside a transaction, PostgreSQL refuses a concurrent build: the marker is what lets it run.
            var refused = await Assert.ThrowsAsync<PostgresException>(() => SqlMigrator.MigrateAsync(dataSource,
                [new("inside", 1, "0001_concurrently", "CREATE INDEX CONCURRENTLY ix_refused ON schema_migrations (name);")],
                NullLogger.Instance, null, Cancellation));
            Assert.Equal(PostgresErrorCodes.ActiveSqlTransaction, refused.SqlState);

            // The duplicate codes fail the build, which leaves an invalid index and no record of the script.
            var failed = await Assert.ThrowsAsync<PostgresException>(() => SqlMigrator.MigrateAsync(dataSource, [table, index], NullLogger.Instance, null, Cancellation));
            Assert.Equal(PostgresErrorCodes.UniqueViolation, failed.SqlState);
            Assert.Equal("1 recorded, index valid: False", await StateAsync());

            await ScratchDatabase.ExecuteAsync(target.ConnectionString, "DELETE FROM items WHERE id = 2");
            Assert.Equal(1, await SqlMigrator.MigrateAsync(dataSource, [table, index], NullLogger.Instance, null, Cancellation));
            Assert.Equal("2 recorded, index valid: True", await StateAsync());

            // The 0.6 s statement outlasted the 300 ms timeout, and the pooled session has its own settings back.
            await using var session = await dataSource.OpenConnectionAsync(Cancellation);
            await using var show = new NpgsqlCommand("SELECT current_setting('statement_timeout') || ' ' || current_setting('maintenance_work_mem')", session);
            var defaults = await ScalarAsync(server.ConnectionString, "SELECT '300ms ' || current_setting('maintenance_work_mem')");
            Assert.Equal(defaults, await show.ExecuteScalarAsync(Cancellation));

            async Task<string> StateAsync()
            {
                await using var check = new NpgsqlConnection(target.ConnectionString);
                await check.OpenAsync(Cancellation);
                await using var command = new NpgsqlCommand("""
                    SELECT (SELECT count(*) FROM schema_migrations WHERE module = 'test') || ' recorded, index valid: '
                        || COALESCE((SELECT CASE WHEN i.indisvalid THEN 'True' ELSE 'False' END FROM pg_index i
                                     WHERE i.indexrelid = 'ux_items_code'::regclass), 'none')
                    """, check);
                return (string)(await command.ExecuteScalarAsync(Cancellation))!;
            }
        });
    }

    /// <summary>
    /// A PostgreSQL restart under a migration (a fast shutdown tells every session "terminating connection due to
    /// administrator command", 57P01, as pg_terminate_backend does here) is waited out like an unreachable server: the
    /// migration runs again and the service becomes ready. Before, the error stopped the service, and the unlock on the
    /// broken session put its own error in place of the real one.
    /// </summary>
    [Fact]
    public async Task A_migration_whose_session_the_server_ends_runs_again_and_the_service_becomes_ready()
    {
        await InScratchDatabaseAsync(async (server, database) =>
        {
            var target = new NpgsqlConnectionStringBuilder(server.ConnectionString)
            {
                Database = database, Pooling = true, NoResetOnClose = true, MaxPoolSize = 2, ApplicationName = "migration-under-restart",
            };
            await using var dataSource = NpgsqlDataSource.Create(target.ConnectionString);
            var readiness = new DatabaseReadiness<ProbeContext>();
            var registrations = new Microsoft.Extensions.DependencyInjection.ServiceCollection();
            Microsoft.Extensions.DependencyInjection.EntityFrameworkServiceCollectionExtensions.AddDbContext<ProbeContext>(registrations, options => options.UseNpgsql(dataSource));
            using var services = Microsoft.Extensions.DependencyInjection.ServiceCollectionContainerBuilderExtensions.BuildServiceProvider(registrations);
            using var initializer = new DatabaseInitializer<ProbeContext>(services, dataSource,
                new MigrationSet<ProbeContext>([new("test", 1, "0001_gated", "SELECT pg_advisory_xact_lock(4242); CREATE TABLE made_after_restart (id int PRIMARY KEY);")]),
                readiness, NullLogger<DatabaseInitializer<ProbeContext>>.Instance);
            // The script waits on a lock the test holds, so that its session is ended while it runs, however slow the machine.
            await using var gate = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(target.ConnectionString) { Pooling = false }.ConnectionString);
            await gate.OpenAsync(Cancellation);
            await using (var take = new NpgsqlCommand("SELECT pg_advisory_lock(4242)", gate))
            {
                await take.ExecuteNonQueryAsync(Cancellation);
            }

            await initializer.StartAsync(Cancellation);
            try
            {
                var ended = "";
                await ShopData.WaitUntilAsync("the migration's session ended by the server", async () =>
                {
                    ended = await ScalarAsync(server.ConnectionString, $"""
                        SELECT COALESCE(string_agg(pg_terminate_backend(pid)::text, ','), '') FROM pg_stat_activity
                        WHERE datname = '{database}' AND application_name = 'migration-under-restart' AND query LIKE 'SELECT pg_advisory_xact_lock(4242)%'
                        """);
                    return ended == "true";
                }, seconds: 30);
                await using (var release = new NpgsqlCommand("SELECT pg_advisory_unlock(4242)", gate))
                {
                    await release.ExecuteNonQueryAsync(Cancellation);
                }

                // Ready, or stopped by the error: whichever comes first.
                await Task.WhenAny(readiness.WaitAsync(Cancellation), initializer.ExecuteTask!).WaitAsync(TimeSpan.FromSeconds(30), Cancellation);
                Assert.False(initializer.ExecuteTask!.IsFaulted, initializer.ExecuteTask.Exception?.ToString());
                await readiness.WaitAsync(Cancellation).WaitAsync(TimeSpan.FromSeconds(1), Cancellation);
                Assert.Equal("1 1", await ScalarAsync(new NpgsqlConnectionStringBuilder(target.ConnectionString) { Pooling = false }.ConnectionString,
                    "SELECT (SELECT count(*) FROM schema_migrations WHERE module = 'test') || ' ' || (SELECT count(*) FROM pg_tables WHERE tablename = 'made_after_restart')"));
            }
            finally
            {
                await initializer.StopAsync(CancellationToken.None);
            }
        });
    }

    /// <summary>
    /// A deployment's PostgreSQL (the manifest's container) has no database of the services' yet. Both replicas of a
    /// service, starting together, find it missing; one creates it, the other finds it made, and both become ready with
    /// the migrations applied once. Before, "database does not exist" stopped every replica, again on every restart.
    /// </summary>
    [Fact]
    public async Task Replicas_starting_on_a_server_without_their_database_create_it_and_migrate_it_once()
    {
        await ScratchDatabase.RunAsync(fixture.App, "migrations", async (server, database) =>
        {
            var target = new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = database, Pooling = true };
            await InitializeAsync(target, replicas: 2, meanwhile: () => Task.CompletedTask);
            Assert.Equal("1 1", await MigrationsAndTablesAsync(target));
        }, create: false);
    }

    /// <summary>
    /// While someone is connected to template1 (an administrator's session, a backup), CREATE DATABASE gives up after five
    /// seconds (55006). The replica tries again, makes its database once that session has gone, and becomes ready.
    /// Before, a failure to make the database escaped the start-up's retries and stopped the service.
    /// </summary>
    [Fact]
    public async Task A_replica_that_cannot_create_its_database_yet_tries_again_until_it_can()
    {
        await ScratchDatabase.RunAsync(fixture.App, "migrations", async (server, database) =>
        {
            await using var onTemplate = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = "template1" }.ConnectionString);
            await onTemplate.OpenAsync(Cancellation);
            var target = new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = database, Pooling = true };
            await InitializeAsync(target, replicas: 1, meanwhile: async () =>
            {
                // Once CREATE DATABASE waits for the template, longer than it waits (five seconds): it gives up at least once.
                await ShopData.WaitUntilAsync("CREATE DATABASE to wait for template1", async () => await ScalarAsync(server.ConnectionString,
                    $"SELECT count(*)::text FROM pg_stat_activity WHERE query LIKE 'CREATE DATABASE%{database}%'") != "0", seconds: 30);
                await Task.Delay(TimeSpan.FromSeconds(6), Cancellation);
                await onTemplate.CloseAsync();
            });
            Assert.Equal("1 1", await MigrationsAndTablesAsync(target));
        }, create: false);
    }

    /// <summary>How often the test migration was recorded, and how many of its tables there are: "1 1" when it ran once.</summary>
    private static Task<string> MigrationsAndTablesAsync(NpgsqlConnectionStringBuilder target) =>
        ScalarAsync(new NpgsqlConnectionStringBuilder(target.ConnectionString) { Pooling = false }.ConnectionString,
            "SELECT (SELECT count(*) FROM schema_migrations WHERE module = 'test') || ' ' || (SELECT count(*) FROM pg_tables WHERE tablename = 'items')");

    /// <summary>Starts <paramref name="replicas"/> initializers of one migration on <paramref name="target"/>, runs <paramref name="meanwhile"/>, and waits until each is ready.</summary>
    private static async Task InitializeAsync(NpgsqlConnectionStringBuilder target, int replicas, Func<Task> meanwhile)
    {
        var started = new List<(NpgsqlDataSource DataSource, ServiceProvider Services, DatabaseReadiness<ProbeContext> Readiness, DatabaseInitializer<ProbeContext> Initializer)>();
        try
        {
            for (var i = 0; i < replicas; i++)
            {
                var dataSource = NpgsqlDataSource.Create(target.ConnectionString);
                var registrations = new ServiceCollection();
                registrations.AddDbContext<ProbeContext>(options => options.UseNpgsql(dataSource));
                var services = registrations.BuildServiceProvider();
                var readiness = new DatabaseReadiness<ProbeContext>();
                started.Add((dataSource, services, readiness, new DatabaseInitializer<ProbeContext>(services, dataSource,
                    new MigrationSet<ProbeContext>([new("test", 1, "0001_items", "CREATE TABLE items (id int PRIMARY KEY);")]),
                    readiness, NullLogger<DatabaseInitializer<ProbeContext>>.Instance)));
            }

            await Task.WhenAll(started.Select(r => r.Initializer.StartAsync(Cancellation)));
            await meanwhile();
            foreach (var replica in started)
            {
                // Ready, or stopped by the error: whichever comes first.
                await Task.WhenAny(replica.Readiness.WaitAsync(Cancellation), replica.Initializer.ExecuteTask!).WaitAsync(TimeSpan.FromSeconds(30), Cancellation);
                Assert.False(replica.Initializer.ExecuteTask!.IsFaulted, replica.Initializer.ExecuteTask.Exception?.ToString());
                await replica.Readiness.WaitAsync(Cancellation).WaitAsync(TimeSpan.FromSeconds(1), Cancellation);
            }
        }
        finally
        {
            foreach (var (dataSource, services, _, initializer) in started)
            {
                await initializer.StopAsync(CancellationToken.None);
                initializer.Dispose();
                await services.DisposeAsync();
                await dataSource.DisposeAsync();
            }
        }
    }

    private sealed class ProbeContext(DbContextOptions<ProbeContext> options) : DbContext(options);

    private Task InScratchDatabaseAsync(Func<NpgsqlConnectionStringBuilder, string, Task> test) => ScratchDatabase.RunAsync(fixture.App, "migrations", test);

    private static async Task<string> ScalarAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(Cancellation);
        await using var command = new NpgsqlCommand(sql, connection);
        return (string)(await command.ExecuteScalarAsync(Cancellation))!;
    }
}
