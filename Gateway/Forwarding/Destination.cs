namespace Shop.Gateway.Forwarding;

/// <summary>
/// One replica of a service as the Gateway sees it: actively probed, and ejected (its circuit opened) after
/// consecutive failures. Once the ejection time has passed it gets one trial request; a failure ejects it again.
/// </summary>
public sealed class Destination(Uri address)
{
    private int _consecutiveFailures;
    private long _ejectedUntilTicks;
    private volatile bool _probeHealthy = true;

    public Uri Address { get; } = address;

    public bool ProbeHealthy
    {
        get => _probeHealthy;
        set => _probeHealthy = value;
    }

    public DateTimeOffset EjectedUntil => new(Interlocked.Read(ref _ejectedUntilTicks), TimeSpan.Zero);

    public bool IsAvailable(DateTimeOffset now) => _probeHealthy && now.UtcTicks >= Interlocked.Read(ref _ejectedUntilTicks);

    public void ReportSuccess()
    {
        Interlocked.Exchange(ref _consecutiveFailures, 0);
        Interlocked.Exchange(ref _ejectedUntilTicks, 0);
    }

    public void ReportFailure(DateTimeOffset now, int failuresToEject, TimeSpan ejectFor)
    {
        if (Interlocked.Increment(ref _consecutiveFailures) >= failuresToEject)
        {
            Interlocked.Exchange(ref _ejectedUntilTicks, (now + ejectFor).UtcTicks);
        }
    }
}
