using System.Security.Cryptography;

namespace Shop.Hosting.ApplicationModel;

/// <summary>
/// A server the AppHost runs as a local process from Debian's packages. Its port is assigned (free, on
/// loopback) when the application is built; its password is generated per run.
/// </summary>
public abstract class ServerResource(string name) : Resource(name), IResourceWithConnectionString
{
    public int Port { get; internal set; }

    public string Password { get; } = GeneratePassword();

    public abstract string? ConnectionString { get; }

    private static string GeneratePassword() =>
        Convert.ToBase64String(RandomNumberGenerator.GetBytes(18)).Replace('+', 'x').Replace('/', 'y');
}

public sealed class PostgresServerResource(string name) : ServerResource(name)
{
    public const string UserName = "postgres";

    /// <summary>
    /// The server's settings, locally and in a deployment alike (the manifest's container gets them as arguments): room
    /// for every service's bounded pool (40 a replica) at the replicas the AppHost runs; statements that run 500 ms or
    /// fail (cancelled by their timeout, say) logged, with their parameters cut at 1,024 characters (like the slow
    /// statements' log, they may hold personal data, an email); lock waits past deadlock_timeout (1 s) logged as they
    /// happen; pg_stat_statements loaded.
    /// </summary>
    public static readonly IReadOnlyList<string> Settings =
    [
        "max_connections=400",
        "log_min_duration_statement=500",
        "log_parameter_max_length_on_error=1024",
        "log_lock_waits=on",
        "shared_preload_libraries=pg_stat_statements",
        "log_line_prefix=%m [%p] %d ",
    ];

    public override string TypeName => "Postgres";

    public List<PostgresDatabaseResource> Databases { get; } = [];

    public override string? ConnectionString => Port == 0 ? null : $"Host=127.0.0.1;Port={Port};Username={UserName};Password={Password}";
}

public sealed class PostgresDatabaseResource(string name, string databaseName, PostgresServerResource server) : Resource(name), IResourceWithConnectionString
{
    public string DatabaseName { get; } = databaseName;

    public PostgresServerResource Server { get; } = server;

    public override string TypeName => "PostgresDatabase";

    public override Resource Parent => Server;

    public string? ConnectionString => Server.ConnectionString is { } server ? $"{server};Database={DatabaseName}" : null;
}

public sealed class RedisResource(string name) : ServerResource(name)
{
    public override string TypeName => "Redis";

    public override string? ConnectionString => Port == 0 ? null : $"127.0.0.1:{Port},password={Password}";
}

public sealed class RabbitMQServerResource(string name) : ServerResource(name)
{
    public const string UserName = "shop";

    public override string TypeName => "RabbitMQ";

    public override string? ConnectionString => Port == 0 ? null : $"amqp://{UserName}:{Uri.EscapeDataString(Password)}@127.0.0.1:{Port}";
}

public static class BackingResourceBuilderExtensions
{
    public static IResourceBuilder<PostgresServerResource> AddPostgres(this IDistributedApplicationBuilder builder, string name) =>
        builder.AddResource(new PostgresServerResource(name));

    public static IResourceBuilder<PostgresDatabaseResource> AddDatabase(this IResourceBuilder<PostgresServerResource> server, string name, string? databaseName = null)
    {
        var database = new PostgresDatabaseResource(name, databaseName ?? name, server.Resource);
        server.Resource.Databases.Add(database);
        return server.ApplicationBuilder.AddResource(database);
    }

    public static IResourceBuilder<RedisResource> AddRedis(this IDistributedApplicationBuilder builder, string name) =>
        builder.AddResource(new RedisResource(name));

    public static IResourceBuilder<RabbitMQServerResource> AddRabbitMQ(this IDistributedApplicationBuilder builder, string name) =>
        builder.AddResource(new RabbitMQServerResource(name));
}
