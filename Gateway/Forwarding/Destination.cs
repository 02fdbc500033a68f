namespace Shop.Gateway.Forwarding;

/// <summary>
/// One replica of a service as the Gateway sees it: actively probed, and ejected (its circuit opened) after
/// consecutive failures. When the ejection time has passed it takes traffic again; because the failure count is
/// kept until a success, its first failure ejects it again at once (a half-open circuit without a trial gate).
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

    public bool IsAvailable(DateTimeOffset now) => _probeHealthy && !IsEjected(now);

    public void ReportSuccess()
    {
        Interlocked.Exchange(ref _consecutiveFailures, 0);
        Interlocked.Exchange(ref _ejectedUntilTicks, 0);
    }

    public bool IsEjected(DateTimeOffset now) => now.UtcTicks < Interlocked.Read(ref _ejectedUntilTicks);

    /// <summary>
    /// Ends an ejection early (its probe passed when no destination was available) but keeps the failure count, so the
    /// next transport failure ejects it again at once.
    /// </summary>
    public void EndEjection() => Interlocked.Exchange(ref _ejectedUntilTicks, 0);

    public void ReportFailure(DateTimeOffset now, int failuresToEject, TimeSpan ejectFor)
    {
        if (Interlocked.Increment(ref _consecutiveFailures) >= failuresToEject)
        {
            Interlocked.Exchange(ref _ejectedUntilTicks, (now + ejectFor).UtcTicks);
        }
    }
}
