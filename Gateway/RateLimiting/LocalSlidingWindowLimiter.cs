using System.Collections.Concurrent;

namespace Shop.Gateway.RateLimiting;

/// <summary>
/// In-process sliding-window log, the fallback while Redis is unavailable: at most <c>permitLimit</c> permits
/// in any <c>window</c> per partition of this process. Partitions with nothing left in their window are evicted,
/// so memory follows the partitions active within a window, not every partition ever seen.
/// </summary>
public sealed class LocalSlidingWindowLimiter(TimeProvider timeProvider)
{
    public static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(30);

    private readonly ConcurrentDictionary<string, Partition> _partitions = new(StringComparer.Ordinal);
    private long _lastSweep = timeProvider.GetTimestamp();

    public int PartitionCount => _partitions.Count;

    public RateLimitDecision TryAcquire(string partitionKey, int permitLimit, TimeSpan window)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(permitLimit, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(window, TimeSpan.Zero);

        var now = timeProvider.GetTimestamp();
        SweepIfDue(now);
        var windowTicks = ToTimestampTicks(window);
        while (true)
        {
            var partition = _partitions.GetOrAdd(partitionKey, static _ => new Partition());
            lock (partition)
            {
                // A sweep may have removed this partition after we looked it up; permits recorded in it would be lost.
                if (partition.Evicted)
                {
                    continue;
                }

                return partition.TryAcquire(now, permitLimit, windowTicks, timeProvider.TimestampFrequency);
            }
        }
    }

    private void SweepIfDue(long now)
    {
        var last = Interlocked.Read(ref _lastSweep);
        if (timeProvider.GetElapsedTime(last, now) < SweepInterval
            || Interlocked.CompareExchange(ref _lastSweep, now, last) != last)
        {
            return;
        }

        foreach (var (key, partition) in _partitions)
        {
            lock (partition)
            {
                if (partition.IsIdle(now))
                {
                    partition.Evicted = true;
                    _partitions.TryRemove(new KeyValuePair<string, Partition>(key, partition));
                }
            }
        }
    }

    private long ToTimestampTicks(TimeSpan duration) => (long)Math.Ceiling(duration.TotalSeconds * timeProvider.TimestampFrequency);

    private sealed class Partition
    {
        private readonly Queue<long> _admitted = new();
        private long _windowTicks;
        private long _lastAdmitted;

        public bool Evicted { get; set; }

        public RateLimitDecision TryAcquire(long now, int permitLimit, long windowTicks, long frequency)
        {
            _windowTicks = windowTicks;
            while (_admitted.TryPeek(out var oldest) && now - oldest >= windowTicks)
            {
                _admitted.Dequeue();
            }

            var allowed = _admitted.Count < permitLimit;
            if (allowed)
            {
                _admitted.Enqueue(now);
                _lastAdmitted = now;
            }

            var resetTicks = _admitted.TryPeek(out var first) ? first + windowTicks - now : 0;
            var remaining = Math.Max(0, permitLimit - _admitted.Count);
            return new RateLimitDecision(allowed, permitLimit, remaining, TimeSpan.FromSeconds((double)resetTicks / frequency), Degraded: false);
        }

        public bool IsIdle(long now) => _admitted.Count == 0 || now - _lastAdmitted >= _windowTicks;
    }
}
