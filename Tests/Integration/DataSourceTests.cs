using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Shop.ServiceDefaults.Data;

namespace Shop.Tests.Integration;

/// <summary>The services' PostgreSQL data source, as <see cref="NpgsqlExtensions.AddNpgsqlDbContext{TContext}"/> builds it, on the app's server.</summary>
[Collection(AppCollection.Name)]
public sealed class DataSourceTests(AppFixture fixture)
{
    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    /// <summary>
    /// Npgsql 10.0.0–10.0.3 (issue npgsql/npgsql#6391) corrupts a connection when a statement's first prepared run fails while
    /// PostgreSQL binds it, inside a transaction: the next run of that statement on the connection reads a stray row and
    /// fails. A value too long for its column fails at bind when PostgreSQL plans for the value given (a custom plan folds the
    /// cast); with the services' generic plans it fails at execution, and the connection stays sound.
    /// </summary>
    [Fact]
    public async Task A_statement_whose_first_prepared_run_fails_on_a_value_in_a_transaction_runs_again_on_that_connection()
    {
        await ScratchDatabase.RunAsync(fixture.App, "datasource", async (server, database) =>
        {
            await ScratchDatabase.ExecuteAsync(new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = database }.ConnectionString,
                "CREATE TABLE codes (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, code varchar(5) NOT NULL)");

            // One connection, so that every run below is on it; every other setting is the services' own.
            var builder = Host.CreateApplicationBuilder();
            builder.Configuration["ConnectionStrings:scratch"] = new NpgsqlConnectionStringBuilder(server.ConnectionString)
            {
                Database = database, Pooling = true, MaxPoolSize = 1,
            }.ConnectionString;
            builder.AddNpgsqlDbContext<ProbeContext>("scratch");
            await using var services = builder.Services.BuildServiceProvider();
            var dataSource = services.GetRequiredService<NpgsqlDataSource>();

            Assert.Equal(1, await InsertAsync(dataSource, "first", inTransaction: false));
            // The second run is the one that prepares the statement (the services prepare on a statement's second use).
            var refused = await Assert.ThrowsAsync<PostgresException>(() => InsertAsync(dataSource, "much too long", inTransaction: true));
            Assert.Equal(PostgresErrorCodes.StringDataRightTruncation, refused.SqlState);

            Assert.Equal(3, await InsertAsync(dataSource, "third", inTransaction: true));
            Assert.Equal(4, await InsertAsync(dataSource, "forth", inTransaction: false));
        });
    }

    private static async Task<int> InsertAsync(NpgsqlDataSource dataSource, string code, bool inTransaction)
    {
        await using var connection = await dataSource.OpenConnectionAsync(Cancellation);
        await using var transaction = inTransaction ? await connection.BeginTransactionAsync(Cancellation) : null;
        await using var command = new NpgsqlCommand("INSERT INTO codes (code) VALUES ($1) RETURNING id", connection, transaction) { Parameters = { new() { Value = code } } };
        var id = (int)(await command.ExecuteScalarAsync(Cancellation))!;
        if (transaction is not null)
        {
            await transaction.CommitAsync(Cancellation);
        }

        return id;
    }

    private sealed class ProbeContext(DbContextOptions<ProbeContext> options) : DbContext(options);

    /// <summary>
    /// An event whose handler could not reach the database is not charged an attempt (it waits out the outage instead of
    /// going to the dead-letter queue). A connection that could not be had in time (the pool exhausted, a server that does
    /// not answer) was never used, so it is an outage; a statement whose answer did not come in time may have been worked
    /// on, and may time out every time, so it is not. Each failure is Npgsql's own, made for real.
    /// </summary>
    [Fact]
    public async Task Waiting_for_a_connection_is_an_outage_and_waiting_for_a_statement_is_not()
    {
        var server = new NpgsqlConnectionStringBuilder(fixture.App.GetConnectionString("inventorydb")) { MaxPoolSize = 1, Timeout = 3 };
        await using var dataSource = NpgsqlDataSource.Create(server.ConnectionString);
        await using var held = await dataSource.OpenConnectionAsync(Cancellation);
        var exhausted = await Assert.ThrowsAsync<NpgsqlException>(async () => await dataSource.OpenConnectionAsync(Cancellation));
        await using var slow = new NpgsqlCommand("SELECT pg_sleep(3)", held) { CommandTimeout = 1 };
        var unanswered = await Assert.ThrowsAsync<NpgsqlException>(() => slow.ExecuteNonQueryAsync(Cancellation));

        var silent = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        silent.Start();
        try
        {
            var port = ((System.Net.IPEndPoint)silent.LocalEndpoint).Port;
            await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server.ConnectionString) { Port = port, Pooling = false }.ConnectionString);
            var unreachable = await Assert.ThrowsAsync<NpgsqlException>(() => connection.OpenAsync(Cancellation));

            Assert.All(new[] { exhausted, unanswered, unreachable }, e => Assert.IsType<TimeoutException>(e.InnerException));
            Assert.True(Shop.ServiceDefaults.Errors.DependencyFailure.IsOutage(exhausted), exhausted.Message);
            Assert.True(Shop.ServiceDefaults.Errors.DependencyFailure.IsOutage(unreachable), unreachable.Message);
            Assert.False(Shop.ServiceDefaults.Errors.DependencyFailure.IsOutage(unanswered), unanswered.Message);
            Assert.All(new[] { exhausted, unanswered, unreachable }, e => Assert.True(Shop.ServiceDefaults.Errors.DependencyFailure.Is(e), e.Message));
        }
        finally
        {
            silent.Stop();
        }
    }
}
