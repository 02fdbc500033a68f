using Shop.Hosting.ApplicationModel;
using Shop.Hosting.Testing;

namespace Shop.Tests.Unit;

public sealed class AppModelTests
{
    [Fact]
    public async Task The_AppHost_model_declares_the_resources_references_and_waits_of_the_design()
    {
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Program>(cancellationToken: TestContext.Current.CancellationToken);
        var resources = builder.Resources.ToDictionary(r => r.Name);

        Assert.IsType<PostgresServerResource>(resources["postgres"]);
        Assert.Equal(["identitydb", "ordersdb", "inventorydb", "notificationsdb"],
            ((PostgresServerResource)resources["postgres"]).Databases.Select(d => d.Name));
        Assert.IsType<RedisResource>(resources["redis"]);
        Assert.IsType<RabbitMQServerResource>(resources["messaging"]);

        var orders = (ProjectResource)resources["orders"];
        Assert.Equal(["ordersdb", "messaging", "inventory", "gateway"], orders.AnnotationsOf<ReferenceAnnotation>().Select(r => r.Resource.Name));
        Assert.Equal(["ordersdb", "messaging"], orders.AnnotationsOf<WaitAnnotation>().Select(r => r.Resource.Name));
        Assert.Equal("/health", orders.HealthCheckPath);

        var gateway = (ProjectResource)resources["gateway"];
        Assert.True(gateway.HttpEndpoint.IsExternal);
        Assert.Equal(0, gateway.HttpEndpoint.Port);
    }

    [Fact]
    public async Task Replica_counts_come_from_configuration_when_given()
    {
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Program>(["--AppHost:Replicas:gateway=3"], TestContext.Current.CancellationToken);
        await using var app = await builder.BuildAsync();

        Assert.Equal(3, app.Resources.OfType<ProjectResource>().Single(p => p.Name == "gateway").Replicas);
        Assert.Equal(2, app.Resources.OfType<ProjectResource>().Single(p => p.Name == "inventory").Replicas);
    }

    /// <summary>
    /// A variable set for one run replaces the model's, a secret's too, and may be written nested (as an environment
    /// variable AppHost__Environment__orders__Payments__Fake__DeclineRate arrives). Before, a nested key was dropped
    /// without a word and a secret's parameter won over the override.
    /// </summary>
    [Fact]
    public async Task Variables_set_for_a_run_override_the_models_secrets_too_and_may_be_nested()
    {
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Program>([
            "--AppHost:Environment:orders:Payments:Fake:DeclineRate=0.2",
            "--AppHost:Environment:orders:Auth__Client__ClientSecret=a-secret-configured-for-this-run-only",
            "--AppHost:Environment:orders:Auth__Client__ClientId=another-client",
        ], TestContext.Current.CancellationToken);
        await using var app = await builder.BuildAsync();

        var environment = app.Resources.OfType<ProjectResource>().Single(p => p.Name == "orders").ModelEnvironment(parameter => parameter.Value);
        Assert.Equal("0.2", environment["Payments__Fake__DeclineRate"]);
        Assert.Equal("a-secret-configured-for-this-run-only", environment["Auth__Client__ClientSecret"]);
        Assert.Equal("another-client", environment["Auth__Client__ClientId"]);
        Assert.DoesNotContain(environment.Keys, key => key.Contains(':', StringComparison.Ordinal));

        // A manifest published with the same settings keeps the secret a parameter, never the value set for the run.
        var manifest = Shop.Hosting.Publishing.ManifestPublisher.Build(app.Resources, AppContext.BaseDirectory);
        Assert.Equal("{orders-client-secret.value}", manifest["orders"]!["env"]!["Auth__Client__ClientSecret"]!.GetValue<string>());
        Assert.Equal("0.2", manifest["orders"]!["env"]!["Payments__Fake__DeclineRate"]!.GetValue<string>());
    }

    [Fact]
    public void Resource_names_follow_Aspire_rules()
    {
        Assert.Throws<ArgumentException>(() => new RedisResource("Redis"));
        Assert.Throws<ArgumentException>(() => new RedisResource("1redis"));
        Assert.Equal("redis-cache", new RedisResource("redis-cache").Name);
    }
}
