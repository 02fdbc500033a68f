namespace Shop.Gateway.Forwarding;

/// <summary>
/// Asks destinations whether they are ready (their <c>/health</c>). <c>ActiveHealthChecker</c> asks every
/// destination on a fixed interval; a request that finds no destination of its service available asks the unready and
/// the ejected ones again at once (<see cref="RecheckAsync"/>), so that a service whose replicas were all out (the
/// database was down, or every replica restarted) is served again as soon as one of them is ready, not a whole probe
/// interval or ejection later. An ejected destination that passes such a probe is let back in, as Envoy lets a
/// successful active health check un-eject a host; it stays half-open (<see cref="Destination.EndEjection"/>).
/// </summary>
public sealed class DestinationProber
{
    /// <summary>How long after an on-demand recheck of a service the next one may start: the bound on probes per second an outage with traffic causes.</summary>
    public static readonly TimeSpan RecheckSpacing = TimeSpan.FromMilliseconds(500);

    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);

    private readonly DestinationPools _pools;
    private readonly TimeProvider _clock;
    private readonly ILogger<DestinationProber> _logger;
    private readonly HttpMessageInvoker _http;
    private readonly Dictionary<string, (Task Task, long StartedAt)> _rechecks = new(StringComparer.OrdinalIgnoreCase);

    public DestinationProber(DestinationPools pools, TimeProvider clock, ILogger<DestinationProber> logger)
        : this(pools, clock, logger, new SocketsHttpHandler { ConnectTimeout = ProbeTimeout, PooledConnectionLifetime = TimeSpan.FromMinutes(1) })
    {
    }

    internal DestinationProber(DestinationPools pools, TimeProvider clock, ILogger<DestinationProber> logger, HttpMessageHandler handler)
    {
        _pools = pools;
        _clock = clock;
        _logger = logger;
        _http = new HttpMessageInvoker(handler);
    }

    /// <summary>Probes every destination of every service.</summary>
    public async Task ProbeAllAsync(CancellationToken cancellationToken)
    {
        foreach (var service in _pools.Services)
        {
            await Task.WhenAll(_pools.All(service).Select(d => ProbeAsync(service, d, "probe", cancellationToken)));
        }
    }

    /// <summary>
    /// Probes the service's destinations that failed their last probe or are ejected, and completes when they have
    /// answered. Callers at the same time share one recheck, and one starts at most every <see cref="RecheckSpacing"/>:
    /// a caller within that time of the last one gets its result without a new probe.
    /// </summary>
    public Task RecheckAsync(string service, CancellationToken cancellationToken)
    {
        Task recheck;
        lock (_rechecks)
        {
            if (!_rechecks.TryGetValue(service, out var last) || (last.Task.IsCompleted && _clock.GetElapsedTime(last.StartedAt) >= RecheckSpacing))
            {
                last = (ProbeUnreadyAsync(service), _clock.GetTimestamp());
                _rechecks[service] = last;
            }

            recheck = last.Task;
        }

        return recheck.WaitAsync(cancellationToken);
    }

    // Not the caller's cancellation: the callers share this probe, and it is bounded by its own timeout.
    private Task ProbeUnreadyAsync(string service)
    {
        var now = _clock.GetUtcNow();
        return Task.WhenAll(_pools.All(service).Where(d => !d.ProbeHealthy || d.IsEjected(now)).Select(async d =>
        {
            if (await ProbeAsync(service, d, "recheck", CancellationToken.None) && d.IsEjected(_clock.GetUtcNow()))
            {
                d.EndEjection();
                _logger.LogInformation("{Service} destination {Address} passed its probe and is no longer ejected", service, d.Address);
            }
        }));
    }

    private async Task<bool> ProbeAsync(string service, Destination destination, string reason, CancellationToken cancellationToken)
    {
        bool healthy;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(ProbeTimeout);
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(destination.Address, "/health"));
            using var response = await _http.SendAsync(request, timeout.Token);
            healthy = response.IsSuccessStatusCode;
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            healthy = false;
        }

        if (healthy != destination.ProbeHealthy)
        {
            _logger.LogInformation("{Service} destination {Address} is now {State} ({Reason})", service, destination.Address,
                healthy ? "healthy" : "unhealthy", reason);
        }

        destination.ProbeHealthy = healthy;
        return healthy;
    }
}
