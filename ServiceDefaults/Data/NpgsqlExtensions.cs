using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Shop.ServiceDefaults.Health;
using Shop.ServiceDefaults.Messaging;

namespace Shop.ServiceDefaults.Data;

public static class NpgsqlExtensions
{
    private const string GenericPlans = "-c plan_cache_mode=force_generic_plan";

    /// <summary>How long a caller waits for a connection: to open one, or for one from the pool.</summary>
    internal const int OpenSeconds = 5;

    /// <summary>How long a statement's answer is awaited before Npgsql cancels it (a paused server also has it open a connection for the cancel).</summary>
    internal const int AnswerSeconds = 10;

    /// <summary>The key of the data source the readiness check of <paramref name="connectionName"/> runs on, apart from the pool requests share.</summary>
    public static string HealthCheckDataSourceKey(string connectionName) => $"{connectionName}:health";

    /// <summary>
    /// Registers a pooled DbContext on the connection string <c>ConnectionStrings:{connectionName}</c> (the
    /// name Aspire's client integration uses), a readiness check that runs a query, and Npgsql's tracing.
    /// </summary>
    /// <param name="rowLevelSecurityRole">When set, connections run as this role with the caller's tenant (see <see cref="TenantConnectionInterceptor"/>).</param>
    public static IHostApplicationBuilder AddNpgsqlDbContext<TContext>(this IHostApplicationBuilder builder, string connectionName, string? rowLevelSecurityRole = null)
        where TContext : DbContext
    {
        var connectionString = builder.Configuration.GetConnectionString(connectionName)
            ?? throw new InvalidOperationException($"ConnectionStrings:{connectionName} is not configured.");

        builder.Services.AddSingleton(_ => Configure(builder.Environment.ApplicationName).Build());
        // Readiness asks whether this replica reaches its database, not whether its pool has a connection free right now:
        // checked on the pool, a burst that keeps every connection busy longer than the probe waits failed the check, and
        // the Gateway took a busy replica out (a CI run: 200 orders at once turned into "no replica is healthy" for 10 s,
        // and a replica that could still serve was refused everything). Two connections of their own, kept open, answer the
        // probes (the AppHost's and each Gateway replica's may come at once); a database that is down or stalled still fails
        // them. A pool that never frees up (a lock held for ever) is no longer seen here: each request then waits its 5 s
        // and is answered 503.
        builder.Services.AddKeyedSingleton(HealthCheckDataSourceKey(connectionName), (_, _) =>
        {
            var dataSource = Configure($"{builder.Environment.ApplicationName} health");
            dataSource.ConnectionStringBuilder.MaxPoolSize = 2;
            dataSource.ConnectionStringBuilder.MinPoolSize = 0;
            return dataSource.Build();
        });

        NpgsqlDataSourceBuilder Configure(string applicationName)
        {
            var dataSource = new NpgsqlDataSourceBuilder(connectionString);
            dataSource.ConnectionStringBuilder.ApplicationName ??= applicationName;
            // Protect the database: a bounded pool per replica (several replicas share one server) and a
            // statement timeout, unless the connection string chooses otherwise.
            if (!Names(connectionString, "Maximum Pool Size", "Max Pool Size"))
            {
                dataSource.ConnectionStringBuilder.MaxPoolSize = Math.Max(40, dataSource.ConnectionStringBuilder.MinPoolSize);
            }

            // A server that stops answering without closing its connections (paused, swapping, behind a network that drops
            // packets) must not hold a request longer than the Gateway waits for it (30 s), or the client gets the
            // Gateway's 504 instead of this service's 503. Npgsql's defaults held a statement 30 s, then tried to cancel it
            // on a new connection, which a paused server held up to twice the 15 s connection timeout: a reservation took
            // 60 s in all (ChaosTests). Here: 5 s for a connection (to open one, or to have one from the pool), and 10 s
            // for a statement's answer, so 10 + 2 * 5 s and the 2 s Npgsql then waits for the statement's end: 22 s at
            // most. (With 15 s for the answer, 27 s was measured, and 29 s in a CI run.) A server that answers ends the
            // statement Npgsql cancels, and the request is answered 503 (InventoryTests: a reservation held by a row lock).
            // The server's own statement timeout (15 s) still ends a statement whose client has gone.
            if (!Names(connectionString, "Timeout"))
            {
                dataSource.ConnectionStringBuilder.Timeout = OpenSeconds;
            }

            if (!Names(connectionString, "Command Timeout"))
            {
                dataSource.ConnectionStringBuilder.CommandTimeout = AnswerSeconds;
            }

            // Plans are kept: a prepared statement is planned once per connection. Left to choose, PostgreSQL plans
            // a statement with an array parameter (product_id = ANY($1), taken by every stock lock) again on every
            // execution, because a generic plan cannot know the array's length. Every query here is a key or index
            // lookup whose best plan does not depend on the values. Generic plans also keep a bad value (too long for its
            // column) from failing while PostgreSQL binds a statement: a statement whose first prepared run fails there,
            // in a transaction, corrupts its connection in Npgsql 10.0.0-10.0.3 (npgsql/npgsql#6391; see DataSourceTests).
            // Text with NUL, which fails there with any plan, is refused before it reaches a service (TextWithoutNul).
            // A connection string's own Options win, but the generic plans are added unless it chooses a plan mode too.
            var options = dataSource.ConnectionStringBuilder.Options;
            if (options is null)
            {
                dataSource.ConnectionStringBuilder.Options = $"-c statement_timeout=15000 {GenericPlans}";
            }
            else if (!options.Contains("plan_cache_mode", StringComparison.OrdinalIgnoreCase))
            {
                dataSource.ConnectionStringBuilder.Options = $"{options} {GenericPlans}";
            }

            // Without row-level security nothing here changes a session's state (settings are SET LOCAL, advisory
            // locks are released by whoever takes them), so a connection goes back to the pool as it is: no reset
            // statements, which PostgreSQL ran as one more transaction for every connection taken from the pool.
            if (rowLevelSecurityRole is null && !Names(connectionString, "No Reset On Close"))
            {
                dataSource.ConnectionStringBuilder.NoResetOnClose = true;
            }

            // Statements run more than once on a connection are prepared on it: PostgreSQL then neither parses nor
            // plans them again (a quarter of its time on the reservation path before this). Npgsql keeps them across
            // pool returns, resetting the session (role, tenant) without DISCARD ALL.
            if (!Names(connectionString, "Max Auto Prepare", "Auto Prepare Min Usages"))
            {
                dataSource.ConnectionStringBuilder.MaxAutoPrepare = 64;
                dataSource.ConnectionStringBuilder.AutoPrepareMinUsages = 2;
            }

            return dataSource;
        }

        builder.Services.AddDbContextPool<TContext>((services, options) =>
        {
            // No retries, and no wrapping: Npgsql's default strategy turns a transient failure into an
            // InvalidOperationException around it, which every caller would have to unwrap to answer 503.
            options.UseNpgsql(services.GetRequiredService<NpgsqlDataSource>(),
                npgsql => npgsql.ExecutionStrategy(dependencies => new NonRetryingExecutionStrategy(dependencies)));
            // EF Core logs each failed connection, command, transaction, query and save as an error, with the stack, and
            // then throws the same exception to the caller, which logs it once with what it means: a warning with the 503
            // for a dependency that is down, an error for a defect, nothing for a refusal answered 409 (a duplicate sku).
            // Left at Error, one request during a database outage logged two errors beside its warning.
            options.ConfigureWarnings(warnings => warnings.Log(
                (RelationalEventId.ConnectionError, LogLevel.Debug),
                (RelationalEventId.CommandError, LogLevel.Debug),
                (RelationalEventId.TransactionError, LogLevel.Debug),
                (CoreEventId.QueryIterationFailed, LogLevel.Debug),
                (CoreEventId.SaveChangesFailed, LogLevel.Debug)));
            if (rowLevelSecurityRole is not null)
            {
                options.AddInterceptors(new TenantConnectionInterceptor(rowLevelSecurityRole));
            }
        });
        builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(
            connectionName,
            services => new NpgsqlHealthCheck(services.GetRequiredKeyedService<NpgsqlDataSource>(HealthCheckDataSourceKey(connectionName)),
                services.GetRequiredService<NpgsqlDataSource>()),
            HealthStatus.Unhealthy,
            [HealthTags.Ready],
            TimeSpan.FromSeconds(5)));
        return builder;
    }

    /// <summary>Applies the service's embedded migrations (and the messaging tables) at start-up.</summary>
    public static IHostApplicationBuilder AddDatabaseMigrations<TContext>(this IHostApplicationBuilder builder, bool includeMessaging = true,
        bool includeIdempotency = false)
        where TContext : DbContext
    {
        var scripts = new List<MigrationScript>();
        if (includeMessaging)
        {
            scripts.AddRange(MigrationScript.FromAssembly(typeof(MessagingModel).Assembly, "messaging", "Shop.ServiceDefaults.Messaging.Migrations."));
        }

        if (includeIdempotency)
        {
            scripts.AddRange(MigrationScript.FromAssembly(typeof(MessagingModel).Assembly, "idempotency", "Shop.ServiceDefaults.Idempotency.Migrations."));
        }

        scripts.AddRange(MigrationScript.FromAssembly(typeof(TContext).Assembly, typeof(TContext).Assembly.GetName().Name!.ToLowerInvariant()));
        builder.Services.AddSingleton(new MigrationSet<TContext>(scripts));
        builder.Services.AddSingleton<DatabaseReadiness<TContext>>();
        builder.Services.AddHostedService<DatabaseInitializer<TContext>>();
        builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(
            "migrations",
            services => services.GetRequiredService<DatabaseReadiness<TContext>>(),
            HealthStatus.Unhealthy,
            [HealthTags.Ready]));
        return builder;
    }

    /// <summary>
    /// <c>SELECT 1</c> on the probes' own connections. When the one it gets turns out to have died since its last use (the
    /// server restarted, say), so has every idle connection of the requests' pool, which Npgsql finds out only when a
    /// statement fails on one (it then empties the pool): that pool is cleared now, before a request is that statement,
    /// and the probe asks again on a new connection. (While the probes ran on the requests' pool, a probe was that
    /// statement; with a pool of their own, a login after a restart was, in a CI run, and was answered 503.) A refused
    /// connection counts too: the requests' pool is as dead then, and clearing an empty pool costs nothing.
    /// </summary>
    private sealed class NpgsqlHealthCheck(NpgsqlDataSource probes, NpgsqlDataSource requests) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                try
                {
                    await SelectOneAsync(cancellationToken);
                }
                catch (Exception ex) when (Errors.DependencyFailure.IsConnectionLost(ex))
                {
                    requests.Clear();
                    await SelectOneAsync(cancellationToken);
                }

                return HealthCheckResult.Healthy();
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException)
            {
                return HealthCheckResult.Unhealthy(ex.Message, ex);
            }
        }

        private async Task SelectOneAsync(CancellationToken cancellationToken)
        {
            await using var command = probes.CreateCommand("SELECT 1");
            await command.ExecuteScalarAsync(cancellationToken);
        }
    }

    /// <summary>Whether the connection string sets any of <paramref name="keywords"/> itself, in any case, with or without spaces.</summary>
    private static bool Names(string connectionString, params string[] keywords) =>
        new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString }.Keys.Cast<string>()
            .Select(key => key.Replace(" ", "", StringComparison.Ordinal))
            .Any(key => keywords.Any(keyword => key.Equals(keyword.Replace(" ", "", StringComparison.Ordinal), StringComparison.OrdinalIgnoreCase)));
}
