using Shop.ServiceDefaults.Telemetry;

namespace Shop.Tests.Unit;

public sealed class ServiceResourceTests
{
    private static string? InstanceId(string? resourceAttributes) =>
        TelemetryExtensions.ServiceResource("orders", resourceAttributes).Build().Attributes
            .Where(a => a.Key == "service.instance.id").Select(a => a.Value.ToString()).SingleOrDefault();

    /// <summary>
    /// A replica the AppHost did not start (a deployment's) has no service.instance.id in OTEL_RESOURCE_ATTRIBUTES: it
    /// gets one of its own, so that two replicas' telemetry can be told apart. Before, they had none.
    /// </summary>
    [Fact]
    public void A_replica_not_named_by_its_environment_gets_an_instance_id_of_its_own()
    {
        // The SDK generates one per process, which is what a replica is.
        Assert.True(Guid.TryParse(InstanceId(null), out _));
        Assert.True(Guid.TryParse(InstanceId("deployment.environment=production"), out _));
    }

    /// <summary>One named there keeps that name: a generated id would override it (the resource detector reads the variable itself).</summary>
    [Fact]
    public void A_replica_named_by_its_environment_gets_no_generated_id_over_that_name()
    {
        Assert.Null(InstanceId("deployment.environment=production, service.instance.id = orders-1"));
    }
}
