using Microsoft.Extensions.Options;

namespace Shop.Gateway.Forwarding;

/// <summary>Probes every destination's /health so a replica that is up but not ready receives no traffic.</summary>
internal sealed class ActiveHealthChecker(DestinationPools pools, IOptions<ForwardingOptions> options, ILogger<ActiveHealthChecker> logger)
    : BackgroundService
{
    private static readonly HttpMessageInvoker Probe = new(new SocketsHttpHandler
    {
        ConnectTimeout = TimeSpan.FromSeconds(2),
        PooledConnectionLifetime = TimeSpan.FromMinutes(1),
    });

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.HealthCheckIntervalSeconds));
        do
        {
            foreach (var service in pools.Services)
            {
                await Task.WhenAll(pools.All(service).Select(d => ProbeAsync(service, d, stoppingToken)));
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    private async Task ProbeAsync(string service, Destination destination, CancellationToken cancellationToken)
    {
        bool healthy;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(2));
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(destination.Address, "/health"));
            using var response = await Probe.SendAsync(request, timeout.Token);
            healthy = response.IsSuccessStatusCode;
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            healthy = false;
        }

        if (healthy != destination.ProbeHealthy)
        {
            logger.LogInformation("{Service} destination {Address} is now {State}", service, destination.Address, healthy ? "healthy" : "unhealthy");
        }

        destination.ProbeHealthy = healthy;
    }
}
