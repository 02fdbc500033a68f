using System.Diagnostics;
using Npgsql;
using Shop.Hosting.ApplicationModel;

namespace Shop.Hosting.Orchestration;

/// <summary>
/// PostgreSQL from Debian's package, in a data folder of this run. PostgreSQL refuses to run as root, so
/// under root it runs as the <c>postgres</c> user through setpriv (which execs, keeping the pid).
/// </summary>
internal sealed class PostgresLauncher(PostgresServerResource resource, RunDirectory run, string? binDirectory) : IResourceLauncher
{
    public TimeSpan StopGrace => TimeSpan.FromSeconds(10);

    public async Task<ProcessSpec> PrepareAsync(ReplicaRuntime replica, CancellationToken cancellationToken)
    {
        var bin = binDirectory ?? FindBinDirectory();
        var folder = run.Combine(resource.Name);
        var data = Path.Combine(folder, "data");
        if (!File.Exists(Path.Combine(data, "PG_VERSION")))
        {
            var passwordFile = Path.Combine(folder, "pwfile");
            await File.WriteAllTextAsync(passwordFile, resource.Password, cancellationToken);
            if (NativeMethods.IsRoot)
            {
                await LetServerUserThroughAsync(cancellationToken);
                await RunToEndAsync("chown", ["-R", "postgres:postgres", folder], cancellationToken);
            }

            // The socket asks for the password as TCP does: the run's private folder is the first wall, not the only one.
            var initdb = AsServerUser(Path.Combine(bin, "initdb"),
                ["-D", data, "-U", PostgresServerResource.UserName, $"--pwfile={passwordFile}", "--auth-host=scram-sha-256",
                 "--auth-local=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]);
            await RunToEndAsync(initdb.FileName, initdb.Arguments, cancellationToken);
            File.Delete(passwordFile);
        }

        var (fileName, arguments) = AsServerUser(Path.Combine(bin, "postgres"),
        [
            "-D", data, "-p", resource.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-k", folder,
            "-c", "listen_addresses=127.0.0.1",
            .. PostgresServerResource.Settings.SelectMany(setting => new[] { "-c", setting }),
        ]);
        return new ProcessSpec(fileName, arguments, folder, new Dictionary<string, string?>()) { StopSignal = NativeMethods.SIGINT };
    }

    public async Task<bool> ProbeAsync(ReplicaRuntime replica, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = new NpgsqlConnection($"{resource.ConnectionString};Database=postgres;Pooling=false;Timeout=3");
            await connection.OpenAsync(cancellationToken);
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            await command.ExecuteScalarAsync(cancellationToken);
            return true;
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException)
        {
            return false;
        }
    }

    /// <summary>
    /// Creates the database on the server if it is not there yet, then checks it answers a query. The server's own
    /// database gets <c>pg_stat_statements</c>, whose view there shows what every database has run.
    /// </summary>
    public static async Task EnsureDatabaseAsync(PostgresDatabaseResource database, CancellationToken cancellationToken)
    {
        await using (var server = new NpgsqlConnection($"{database.Server.ConnectionString};Database=postgres;Pooling=false;Timeout=5"))
        {
            await server.OpenAsync(cancellationToken);
            try
            {
                await using var statistics = new NpgsqlCommand("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", server);
                await statistics.ExecuteNonQueryAsync(cancellationToken);
            }
            catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.UniqueViolation or PostgresErrorCodes.DuplicateObject)
            {
                // Another database of this server, created at the same moment, made it first.
            }

            await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = $1", server);
            exists.Parameters.Add(new() { Value = database.DatabaseName });
            if (await exists.ExecuteScalarAsync(cancellationToken) is null)
            {
                var quoted = "\"" + database.DatabaseName.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
                await using var create = new NpgsqlCommand($"CREATE DATABASE {quoted}", server);
                await create.ExecuteNonQueryAsync(cancellationToken);
            }
        }

        await using var connection = new NpgsqlConnection($"{database.ConnectionString};Pooling=false;Timeout=5");
        await connection.OpenAsync(cancellationToken);
    }

    /// <summary>
    /// The server, run as postgres, reaches its folder through the run's, which is root's and private: the postgres
    /// group may pass through it (search, not list), and finds every other folder in it private.
    /// </summary>
    private async Task LetServerUserThroughAsync(CancellationToken cancellationToken)
    {
        await RunToEndAsync("chgrp", ["postgres", run.Path], cancellationToken);
        File.SetUnixFileMode(run.Path, RunDirectory.Private | UnixFileMode.GroupExecute);
    }

    private static (string FileName, IReadOnlyList<string> Arguments) AsServerUser(string executable, IReadOnlyList<string> arguments) =>
        NativeMethods.IsRoot
            ? ("setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", executable, .. arguments])
            : (executable, arguments);

    private static string FindBinDirectory()
    {
        var candidates = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "postgres")))
            : [];
        return candidates.OrderByDescending(d => int.TryParse(Path.GetFileName(Path.GetDirectoryName(d))!.Split('.')[0], out var major) ? major : 0)
            .FirstOrDefault()
            ?? throw new InvalidOperationException("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres). Run the README's set-up command.");
    }

    /// <summary>Runs a set-up command to its end; a cancelled start (Ctrl+C while initdb runs, say) stops it, and waits until it has.</summary>
    internal static async Task RunToEndAsync(string fileName, IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var error = process.StandardError.ReadToEndAsync(CancellationToken.None);
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // Left running, it would go on writing into the run's folder, which is about to be deleted, after the AppHost exits.
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // It ended in between.
            }

            await process.WaitForExitAsync(CancellationToken.None);
            throw;
        }

        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{Path.GetFileName(fileName)} failed ({process.ExitCode}): {await error}{await output}");
        }
    }
}
