using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Shop.Hosting.ApplicationModel;
using Shop.Hosting.Publishing;
using Shop.Hosting.Testing;

namespace Shop.Tests.Unit;

public sealed partial class ManifestPublisherTests
{
    [Fact]
    public async Task The_manifest_describes_every_resource_with_references_that_resolve_and_no_secret_values()
    {
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Program>(cancellationToken: TestContext.Current.CancellationToken);
        var folder = Directory.CreateTempSubdirectory("manifest-");
        try
        {
            var path = Path.Combine(folder.FullName, "aspire-manifest.json");
            ManifestPublisher.Write(builder.Resources, path);
            var text = await File.ReadAllTextAsync(path, TestContext.Current.CancellationToken);
            var manifest = JsonNode.Parse(text)!.AsObject();
            var resources = manifest["resources"]!.AsObject();

            Assert.Equal(ManifestPublisher.Schema, manifest["$schema"]!.GetValue<string>());
            Assert.All(builder.Resources, r => Assert.True(resources.ContainsKey(r.Name), $"{r.Name} is missing"));
            Assert.Equal("container.v0", resources["postgres"]!["type"]!.GetValue<string>());
            Assert.Equal("value.v0", resources["ordersdb"]!["type"]!.GetValue<string>());
            Assert.Equal("project.v0", resources["orders"]!["type"]!.GetValue<string>());
            Assert.True(resources["gateway"]!["bindings"]!["http"]!["external"]!.GetValue<bool>());

            foreach (Match reference in Reference().Matches(text))
            {
                Assert.True(resources.ContainsKey(reference.Groups[1].Value), $"{reference.Value} names no resource");
            }

            foreach (var project in resources.Where(r => r.Value!["type"]!.GetValue<string>() == "project.v0"))
            {
                Assert.True(File.Exists(Path.Combine(folder.FullName, project.Value!["path"]!.GetValue<string>())), $"{project.Key}'s path does not exist");
            }

            Assert.Equal("{orders-client-secret.value}", resources["orders"]!["env"]!["Auth__Client__ClientSecret"]!.GetValue<string>());
            Assert.All(builder.Resources.OfType<ParameterResource>(), p => Assert.DoesNotContain(p.Value, text, StringComparison.Ordinal));
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Redis_and_RabbitMQ_passwords_are_generated_without_special_characters_and_Redis_reads_its_own_from_the_environment()
    {
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Program>(cancellationToken: TestContext.Current.CancellationToken);
        var resources = ManifestPublisher.Build(builder.Resources, AppContext.BaseDirectory);
        JsonNode Generate(string parameter) => resources[parameter]!["inputs"]!["value"]!["default"]!["generate"]!;

        // Aspire's shape: special is written only when false. A comma breaks a StackExchange.Redis connection string, and
        // the RabbitMQ password goes into an amqp:// URI.
        Assert.Equal(22, Generate("redis-password")["minLength"]!.GetValue<int>());
        Assert.False(Generate("redis-password")["special"]!.GetValue<bool>());
        Assert.False(Generate("messaging-password")["special"]!.GetValue<bool>());
        Assert.Null(Generate("postgres-password")["special"]);

        var redis = resources["redis"]!;
        var args = redis["args"]!.AsArray().Select(a => a!.GetValue<string>()).ToList();
        Assert.Equal("{redis-password.value}", redis["env"]!["REDIS_PASSWORD"]!.GetValue<string>());
        Assert.Equal("/bin/sh", redis["entrypoint"]!.GetValue<string>());
        Assert.Equal("-c", args[0]);
        Assert.Contains("redis-server --requirepass \"$REDIS_PASSWORD\"", args[1], StringComparison.Ordinal);
        Assert.DoesNotContain(args, a => a.Contains("password.value", StringComparison.Ordinal));
    }

    /// <summary>
    /// What a deployment from the manifest needs to start and to carry the load it does locally: a client secret as long
    /// as the Gateway and Orders require (a generated 22 stopped both at start), and a PostgreSQL with room for every
    /// service's pool and the same logging as the local one (the image's default of 100 connections refused them).
    /// </summary>
    [Fact]
    public async Task A_deployment_generates_secrets_as_long_as_their_services_require_and_runs_postgresql_with_the_local_settings()
    {
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Program>(cancellationToken: TestContext.Current.CancellationToken);
        var resources = ManifestPublisher.Build(builder.Resources, AppContext.BaseDirectory);

        Assert.Equal(32, resources["orders-client-secret"]!["inputs"]!["value"]!["default"]!["generate"]!["minLength"]!.GetValue<int>());
        Assert.True(builder.Resources.OfType<ParameterResource>().Single(p => p.Name == "orders-client-secret").Value.Length >= 32);
        var args = resources["postgres"]!["args"]!.AsArray().Select(a => a!.GetValue<string>()).ToList();
        Assert.Equal(["-c", "max_connections=400", "-c", "log_min_duration_statement=500"], args.Take(4));
        Assert.Equal(PostgresServerResource.Settings, args.Where((_, i) => i % 2 == 1));
    }

    [GeneratedRegex(@"\{([a-z][a-z0-9-]*)\.(?:connectionString|value|inputs|bindings)[^}]*\}")]
    private static partial Regex Reference();
}
