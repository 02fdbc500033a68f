using Npgsql;
using Shop.Hosting;

namespace Shop.Tests.Integration;

/// <summary>A database of a test's own on the app's PostgreSQL server, dropped afterwards whatever the outcome.</summary>
internal static class ScratchDatabase
{
    /// <summary>
    /// Runs <paramref name="test"/> with the server (a superuser on <c>postgres</c>, unpooled) and the new database's name;
    /// with <paramref name="create"/> false, the name only, for the test to create the database.
    /// </summary>
    public static async Task RunAsync(DistributedApplication app, string prefix, Func<NpgsqlConnectionStringBuilder, string, Task> test, bool create = true)
    {
        var database = $"{prefix}_{Guid.NewGuid():N}";
        var server = new NpgsqlConnectionStringBuilder(app.GetConnectionString("postgres")) { Database = "postgres", Pooling = false };
        if (create)
        {
            await ExecuteAsync(server.ConnectionString, $"CREATE DATABASE {database}");
        }

        try
        {
            await test(server, database);
        }
        finally
        {
            await ExecuteAsync(server.ConnectionString, $"DROP DATABASE IF EXISTS {database} WITH (FORCE)");
        }
    }

    public static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(TestContext.Current.CancellationToken);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
    }
}
