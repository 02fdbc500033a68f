using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging.Abstractions;
using Shop.ServiceDefaults.Messaging;

namespace Shop.Tests.Unit;

/// <summary>
/// A broker that accepts connections and answers nothing (paused, or behind a network that drops its packets) must not
/// hold the readiness report past a probe's time: the AppHost's probe gives up after 3 s and takes the replica for unready.
/// </summary>
public sealed class StalledBrokerHealthTests
{
    [Fact]
    public async Task A_broker_that_never_answers_the_handshake_is_reported_degraded_within_the_probes_time()
    {
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var port = ((IPEndPoint)silent.LocalEndpoint).Port;
        await using var provider = new RabbitMqConnectionProvider($"amqp://guest:guest@127.0.0.1:{port}/", "stalled-broker-test",
            NullLogger<RabbitMqConnectionProvider>.Instance);
        var check = new RabbitMqExtensions.RabbitMqHealthCheck(provider);
        var context = new HealthCheckContext { Registration = new HealthCheckRegistration("messaging", check, HealthStatus.Degraded, []) };

        var watch = Stopwatch.StartNew();
        var result = await check.CheckHealthAsync(context, TestContext.Current.CancellationToken);

        // Before, the check waited for the client's handshake timeout (10 s).
        Assert.Equal(HealthStatus.Degraded, result.Status);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3), $"the check answered after {watch.Elapsed}");
    }
}
