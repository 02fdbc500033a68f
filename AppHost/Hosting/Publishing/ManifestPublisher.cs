using System.Text.Json;
using System.Text.Json.Nodes;
using Shop.Hosting.ApplicationModel;

namespace Shop.Hosting.Publishing;

/// <summary>
/// Writes the app model as an Aspire manifest (schema aspire-8.0), the file azd reads to deploy an AppHost:
/// backing services as <c>container.v0</c> with connection-string expressions, databases as <c>value.v0</c>,
/// secrets as generated <c>parameter.v0</c>, services as <c>project.v0</c> with Aspire's environment contract.
/// Locally the AppHost runs Debian's packages instead of these containers; the manifest says what a real
/// deployment runs.
/// </summary>
public static class ManifestPublisher
{
    public const string Schema = "https://json.schemastore.org/aspire-8.0.json";

    public static void Write(IReadOnlyList<Resource> resources, string outputPath)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(outputPath))!;
        Directory.CreateDirectory(directory);
        var manifest = new JsonObject { ["$schema"] = Schema, ["resources"] = Build(resources, directory) };
        File.WriteAllText(outputPath, manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    public static JsonObject Build(IReadOnlyList<Resource> resources, string manifestDirectory)
    {
        var result = new JsonObject();
        foreach (var resource in resources)
        {
            switch (resource)
            {
                case PostgresServerResource postgres:
                    result[$"{postgres.Name}-password"] = GeneratedSecret($"{postgres.Name}-password");
                    var server = Container("docker.io/library/postgres:17.6", 5432,
                        $"Host={{{postgres.Name}.bindings.tcp.host}};Port={{{postgres.Name}.bindings.tcp.port}};Username=postgres;Password={{{postgres.Name}-password.value}}",
                        new JsonObject
                        {
                            ["POSTGRES_HOST_AUTH_METHOD"] = "scram-sha-256",
                            ["POSTGRES_INITDB_ARGS"] = "--auth-host=scram-sha-256 --auth-local=scram-sha-256",
                            ["POSTGRES_USER"] = "postgres",
                            ["POSTGRES_PASSWORD"] = $"{{{postgres.Name}-password.value}}",
                        });
                    // The image's entrypoint runs postgres with arguments that start with a dash: the same settings as locally.
                    server["args"] = new JsonArray([.. PostgresServerResource.Settings.SelectMany(setting => new[] { "-c", setting }).Select(a => JsonValue.Create(a))]);
                    result[postgres.Name] = server;
                    break;
                case PostgresDatabaseResource database:
                    result[database.Name] = new JsonObject
                    {
                        ["type"] = "value.v0",
                        ["connectionString"] = $"{{{database.Server.Name}.connectionString}};Database={database.DatabaseName}",
                    };
                    break;
                case RedisResource redis:
                    // StackExchange.Redis connection strings break on a comma: no special characters, as Aspire generates it.
                    result[$"{redis.Name}-password"] = GeneratedSecret($"{redis.Name}-password", special: false);
                    var container = Container("docker.io/library/redis:7.4", 6379,
                        $"{{{redis.Name}.bindings.tcp.host}}:{{{redis.Name}.bindings.tcp.port}},password={{{redis.Name}-password.value}}",
                        new JsonObject { ["REDIS_PASSWORD"] = $"{{{redis.Name}-password.value}}" });
                    // As Aspire does, the password reaches redis-server through the environment: in the container's
                    // arguments it would show in ps and in the deployed spec. exec, so redis-server gets the stop signal.
                    container["entrypoint"] = "/bin/sh";
                    container["args"] = new JsonArray("-c", "exec redis-server --requirepass \"$REDIS_PASSWORD\" --save '' --appendonly no");
                    result[redis.Name] = container;
                    break;
                case RabbitMQServerResource rabbit:
                    // The password goes into an amqp:// URI: no special characters, as Aspire generates it.
                    result[$"{rabbit.Name}-password"] = GeneratedSecret($"{rabbit.Name}-password", special: false);
                    result[rabbit.Name] = Container("docker.io/library/rabbitmq:3.13", 5672,
                        $"amqp://{RabbitMQServerResource.UserName}:{{{rabbit.Name}-password.value}}@{{{rabbit.Name}.bindings.tcp.host}}:{{{rabbit.Name}.bindings.tcp.port}}",
                        new JsonObject
                        {
                            ["RABBITMQ_DEFAULT_USER"] = RabbitMQServerResource.UserName,
                            ["RABBITMQ_DEFAULT_PASS"] = $"{{{rabbit.Name}-password.value}}",
                        });
                    break;
                case ParameterResource parameter:
                    result[parameter.Name] = GeneratedSecret(parameter.Name, parameter.Secret, minLength: parameter.MinLength);
                    break;
                case ProjectResource project:
                    result[project.Name] = Project(project, manifestDirectory);
                    break;
                default:
                    throw new NotSupportedException($"'{resource.Name}' ({resource.TypeName}) has no manifest form.");
            }
        }

        return result;
    }

    private static JsonObject Project(ProjectResource project, string manifestDirectory)
    {
        var env = new JsonObject
        {
            ["OTEL_DOTNET_EXPERIMENTAL_OTLP_EMIT_EXCEPTION_LOG_ATTRIBUTES"] = "true",
            ["OTEL_DOTNET_EXPERIMENTAL_OTLP_EMIT_EVENT_LOG_ATTRIBUTES"] = "true",
            ["OTEL_DOTNET_EXPERIMENTAL_OTLP_RETRY"] = "in_memory",
            ["ASPNETCORE_FORWARDEDHEADERS_ENABLED"] = "true",
            ["HTTP_PORTS"] = $"{{{project.Name}.bindings.http.targetPort}}",
        };
        foreach (var reference in project.AnnotationsOf<ReferenceAnnotation>().Select(r => r.Resource))
        {
            if (reference is IResourceWithConnectionString)
            {
                env[$"ConnectionStrings__{reference.Name}"] = $"{{{reference.Name}.connectionString}}";
            }
            else if (reference is ProjectResource)
            {
                env[$"services__{reference.Name}__http__0"] = $"{{{reference.Name}.bindings.http.url}}";
            }
        }

        foreach (var (name, value) in project.ModelEnvironment(parameter => $"{{{parameter.Name}.value}}"))
        {
            env[name] = value;
        }

        // A manifest never carries a secret's value: a variable set for the run (AppHost:Environment) over a secret's
        // name is the running AppHost's, and the deployment keeps the parameter.
        foreach (var secret in project.AnnotationsOf<ParameterEnvironmentAnnotation>())
        {
            env[secret.Name] = $"{{{secret.Parameter.Name}.value}}";
        }

        var http = new JsonObject { ["scheme"] = "http", ["protocol"] = "tcp", ["transport"] = "http" };
        if (project.HttpEndpoint.IsExternal)
        {
            http["external"] = true;
        }

        return new JsonObject
        {
            ["type"] = "project.v0",
            ["path"] = Path.GetRelativePath(manifestDirectory, project.Metadata.ProjectPath).Replace('\\', '/'),
            ["env"] = env,
            ["bindings"] = new JsonObject { ["http"] = http },
        };
    }

    private static JsonObject Container(string image, int port, string connectionString, JsonObject env) => new()
    {
        ["type"] = "container.v0",
        ["connectionString"] = connectionString,
        ["image"] = image,
        ["env"] = env,
        ["bindings"] = new JsonObject
        {
            ["tcp"] = new JsonObject
            {
                ["scheme"] = "tcp",
                ["protocol"] = "tcp",
                ["transport"] = "tcp",
                ["targetPort"] = port,
            },
        },
    };

    /// <param name="special">Whether the generated value may hold special characters; Aspire writes <c>special</c> only when false.</param>
    /// <param name="minLength">The shortest value a deployment may generate (Aspire's default: 22).</param>
    private static JsonObject GeneratedSecret(string name, bool secret = true, bool special = true, int minLength = ParameterResource.DefaultMinLength)
    {
        var generate = new JsonObject { ["minLength"] = minLength };
        if (!special)
        {
            generate["special"] = false;
        }

        return new JsonObject
        {
            ["type"] = "parameter.v0",
            ["value"] = $"{{{name}.inputs.value}}",
            ["inputs"] = new JsonObject
            {
                ["value"] = new JsonObject
                {
                    ["type"] = "string",
                    ["secret"] = secret,
                    ["default"] = new JsonObject { ["generate"] = generate },
                },
            },
        };
    }
}
