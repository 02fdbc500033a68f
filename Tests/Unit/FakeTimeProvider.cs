namespace Shop.Tests.Unit;

/// <summary>A clock that moves only when told to.</summary>
internal sealed class FakeTimeProvider : TimeProvider
{
    private long _ticks = TimeSpan.FromHours(1).Ticks;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => _ticks;

    public override DateTimeOffset GetUtcNow() => DateTimeOffset.UnixEpoch.AddTicks(_ticks);

    public void Advance(TimeSpan duration) => _ticks += duration.Ticks;
}
