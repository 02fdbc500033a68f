using System.Diagnostics;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Shop.ServiceDefaults.Telemetry;

namespace Shop.ServiceDefaults.Data;

/// <summary>Seeds data after the schema is current (development data, reference rows).</summary>
public interface IDatabaseSeeder<in TContext> where TContext : DbContext
{
    Task SeedAsync(TContext db, CancellationToken cancellationToken);
}

/// <summary>
/// Migrates the service's database at start-up (creating it on a server that does not have it yet), retrying while
/// PostgreSQL is not reachable yet, then runs the seeders. The service reports unhealthy (not ready) until this has finished.
/// </summary>
internal sealed class DatabaseInitializer<TContext>(
    IServiceProvider services,
    NpgsqlDataSource dataSource,
    MigrationSet<TContext> migrations,
    DatabaseReadiness<TContext> readiness,
    ILogger<DatabaseInitializer<TContext>> logger) : BackgroundService where TContext : DbContext
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var missing = false;
        for (var attempt = 1; ; attempt++)
        {
            using var activity = ShopDiagnostics.ActivitySource.StartActivity($"migrate {typeof(TContext).Name}");
            try
            {
                if (missing)
                {
                    await CreateDatabaseAsync(stoppingToken);
                    missing = false;
                }

                var started = Stopwatch.GetTimestamp();
                var applied = await SqlMigrator.MigrateAsync(dataSource, migrations.Scripts, logger, SeedAsync, stoppingToken);

                logger.LogInformation("Database ready: {Applied} migrations applied in {ElapsedMs:F0} ms", applied, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                readiness.MarkReady();
                return;
            }
            // A new server (a deployment's first start) has no database of the service's yet: the service makes it, as the
            // local AppHost does before it starts the service. Any replica may; the others find it made.
            // Made in the next attempt, where a failure to make it is retried like any other.
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.InvalidCatalogName && !missing && !stoppingToken.IsCancellationRequested)
            {
                logger.LogInformation("Database does not exist (attempt {Attempt}); making it", attempt);
                missing = true;
                if (attempt > 1)
                {
                    // Made before and still missing (another replica dropping it, a pooler's alias): not in a tight loop.
                    await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(5000, 250 * attempt)), stoppingToken);
                }
            }
            // Only an unreachable server, or one that went away under the migration (a restart: administrator shutdown,
            // 57P01), is waited for; a failing script is a defect and stops the service, so the AppHost shows it crashing
            // with the error instead of a service that is never ready. Making the database also waits while someone else
            // is connected to its template (55006), which CREATE DATABASE refuses after five seconds.
            catch (Exception ex) when ((ex is NpgsqlException { IsTransient: true } or TimeoutException || Errors.DependencyFailure.IsOutage(ex)
                    || (missing && ex is PostgresException { SqlState: PostgresErrorCodes.ObjectInUse }))
                && !stoppingToken.IsCancellationRequested)
            {
                activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
                logger.LogWarning(ex, "Database not reachable or not made yet (attempt {Attempt}); retrying", attempt);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(5000, 250 * attempt)), stoppingToken);
            }
        }
    }

    /// <summary>
    /// Creates the connection string's database, connected to the server's <c>postgres</c> database (or, on a server
    /// without one, <c>template1</c>) with the same credentials. A user without the right to create databases, or to
    /// connect to <c>postgres</c>, gets PostgreSQL's own error, which stops the service.
    /// </summary>
    private async Task CreateDatabaseAsync(CancellationToken cancellationToken)
    {
        await using var template = dataSource.CreateConnection();
        var name = new NpgsqlConnectionStringBuilder(template.ConnectionString).Database
            ?? throw new InvalidOperationException("The connection string names no database.");
        await using var server = await OpenMaintenanceAsync(template, "postgres", cancellationToken)
            ?? await OpenMaintenanceAsync(template, "template1", cancellationToken)
            ?? throw new InvalidOperationException($"The server has neither a postgres nor a template1 database to create {name} from.");
        await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name.Replace("\"", "\"\"", StringComparison.Ordinal)}\"", server);
        try
        {
            await create.ExecuteNonQueryAsync(cancellationToken);
            logger.LogInformation("Database {Database} did not exist; created it", name);
        }
        catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.DuplicateDatabase or PostgresErrorCodes.UniqueViolation)
        {
            // Another replica made it first.
        }
    }

    /// <summary>A connection to <paramref name="database"/> with the data source's credentials; null when the server has no such database.</summary>
    private static async Task<NpgsqlConnection?> OpenMaintenanceAsync(NpgsqlConnection template, string database, CancellationToken cancellationToken)
    {
        var settings = new NpgsqlConnectionStringBuilder(template.ConnectionString) { Database = database, Pooling = false };
        // The clone keeps the password, which the data source's own connection string leaves out.
        var connection = template.CloneWith(settings.ConnectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
            return connection;
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.InvalidCatalogName)
        {
            await connection.DisposeAsync();
            return null;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private async Task SeedAsync(CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<TContext>();
        foreach (var seeder in scope.ServiceProvider.GetServices<IDatabaseSeeder<TContext>>())
        {
            await seeder.SeedAsync(db, cancellationToken);
        }
    }
}

internal sealed record MigrationSet<TContext>(IReadOnlyList<MigrationScript> Scripts) where TContext : DbContext;

/// <summary>
/// Whether the service's migrations and seeders have run. The <c>migrations</c> readiness check reports it, and
/// background work that uses the database waits for it (<see cref="DatabaseReadinessExtensions.WaitForMigrationsAsync"/>),
/// so nothing touches a table before it exists in its current shape.
/// </summary>
public sealed class DatabaseReadiness<TContext> : IHealthCheck where TContext : DbContext
{
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal void MarkReady() => _ready.TrySetResult();

    public Task WaitAsync(CancellationToken cancellationToken) => _ready.Task.WaitAsync(cancellationToken);

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(_ready.Task.IsCompleted ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("Migrations have not finished."));
}

public static class DatabaseReadinessExtensions
{
    /// <summary>
    /// Completes once <typeparamref name="TContext"/>'s migrations have run, at once when the service does not run
    /// them (<c>AddDatabaseMigrations</c> not called).
    /// </summary>
    public static Task WaitForMigrationsAsync<TContext>(this IServiceProvider services, CancellationToken cancellationToken)
        where TContext : DbContext =>
        services.GetService<DatabaseReadiness<TContext>>()?.WaitAsync(cancellationToken) ?? Task.CompletedTask;
}
