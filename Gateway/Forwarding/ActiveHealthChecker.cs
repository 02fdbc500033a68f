using Microsoft.Extensions.Options;

namespace Shop.Gateway.Forwarding;

/// <summary>Probes every destination's /health on an interval, so a replica that is up but not ready receives no traffic.</summary>
internal sealed class ActiveHealthChecker(DestinationProber prober, IOptions<ForwardingOptions> options) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.HealthCheckIntervalSeconds));
        do
        {
            await prober.ProbeAllAsync(stoppingToken);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}
