using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using Shop.ServiceDefaults.Caching;

namespace Shop.Inventory.Products;

/// <summary>
/// Values kept in this process's memory in front of the shared cache, served only while this replica holds a fresh
/// lease on the invalidation stream (see <c>ProductInvalidations</c>).
/// </summary>
/// <remarks>
/// The lease is how "once a write has returned, no replica serves the old value" survives a replica that is slow, cut
/// off or paused: the replica PINGs on its subscription, and Redis answers in the same stream as the invalidations,
/// after every message published before the PING. Having read the answer to a PING sent at <c>t</c>, the replica has
/// applied every invalidation published before <c>t</c>, so it may serve from memory until <c>t + lease</c>. A writer
/// waits one lease after its invalidation reached Redis: by then every replica has either applied it or stopped
/// serving from memory.
/// </remarks>
public sealed class NearCache<TValue>(TimeProvider clock, TimeSpan lease, TimeSpan entryLifetime, int maxEntries) where TValue : class
{
    private readonly ConcurrentDictionary<Guid, Entry> _entries = new();
    private readonly Lock _gate = new();
    private readonly Lease _lease = new(clock, lease);
    private readonly long _lifetimeTicks = (long)(entryLifetime.TotalSeconds * clock.TimestampFrequency);
    private long _generation;

    private sealed record Entry(TValue Value, long ExpiresAt);

    /// <summary>A lease of zero turns the near cache off: every read goes to the shared cache.</summary>
    public bool Enabled => _lease.Enabled;

    public TimeSpan Lease => lease;

    /// <summary>Whether entries may be served now: the last confirmed PING is recent enough.</summary>
    public bool IsFresh => _lease.IsHeldAt(clock.GetTimestamp());

    public int Count => _entries.Count;

    /// <summary>Taken before reading what will be filled; a fill is dropped if an invalidation was applied in between.</summary>
    public long Generation => Volatile.Read(ref _generation);

    public bool TryGet(Guid key, [MaybeNullWhen(false)] out TValue value)
    {
        var now = clock.GetTimestamp();
        if (_lease.IsHeldAt(now) && _entries.TryGetValue(key, out var entry) && now < entry.ExpiresAt)
        {
            value = entry.Value;
            return true;
        }

        value = null;
        return false;
    }

    /// <summary>
    /// Keeps a value read at <paramref name="generation"/>, unless something was invalidated since. Without
    /// <paramref name="renew"/>, only an entry still held is replaced, and its expiry stands: a value that came from this
    /// cache itself must not make its own entry live longer.
    /// </summary>
    public bool Fill(long generation, Guid key, TValue value, bool renew = true)
    {
        if (!Enabled)
        {
            return false;
        }

        lock (_gate)
        {
            if (generation != _generation)
            {
                return false;
            }

            if (_entries.Count >= maxEntries && !_entries.ContainsKey(key))
            {
                _entries.Clear();
            }

            if (!renew)
            {
                if (!_entries.TryGetValue(key, out var held) || clock.GetTimestamp() >= held.ExpiresAt)
                {
                    return false;
                }

                _entries[key] = held with { Value = value };
                return true;
            }

            _entries[key] = new Entry(value, clock.GetTimestamp() + _lifetimeTicks);
            return true;
        }
    }

    public void Invalidate(Guid key)
    {
        lock (_gate)
        {
            _generation++;
            _entries.TryRemove(key, out _);
        }
    }

    /// <summary>The stream was (re)connected or lost: what is held may have missed invalidations, and the lease ends.</summary>
    public void Reset()
    {
        lock (_gate)
        {
            _generation++;
            _entries.Clear();
            _lease.End();
        }
    }

    /// <summary>Every invalidation published before a PING sent at <paramref name="sentAt"/> has been applied.</summary>
    public void Confirmed(long sentAt) => _lease.Confirmed(sentAt);
}
