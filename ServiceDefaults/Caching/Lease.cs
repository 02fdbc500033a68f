namespace Shop.ServiceDefaults.Caching;

/// <summary>
/// How long what a replica holds in memory may be trusted: until one lease after the last PING that its
/// <see cref="LeasedSubscription"/> saw answered was sent. Confirmed and ended by that subscription's loop only.
/// </summary>
public sealed class Lease(TimeProvider clock, TimeSpan length)
{
    private readonly long _ticks = (long)(length.TotalSeconds * clock.TimestampFrequency);
    private long _until = long.MinValue;

    /// <summary>A lease of zero is never held: memory is never trusted.</summary>
    public bool Enabled => _ticks > 0;

    public TimeSpan Length => length;

    public bool IsHeldAt(long timestamp) => timestamp < Volatile.Read(ref _until);

    /// <summary>A PING sent at <paramref name="sentAt"/> was answered; an answer to an older one never shortens the lease.</summary>
    public void Confirmed(long sentAt)
    {
        var until = sentAt + _ticks;
        if (until > Volatile.Read(ref _until))
        {
            Volatile.Write(ref _until, until);
        }
    }

    public void End() => Volatile.Write(ref _until, long.MinValue);
}
