using System.Collections.Concurrent;
using Shop.ServiceDefaults.Caching;

namespace Shop.Gateway.Identity.Tokens;

/// <summary>
/// The revoked access-token ids this replica knows of, trusted only while it holds a fresh lease on the revocation
/// channel (<c>RevocationSubscription</c>, ADR 0008's mechanism). While the lease holds, every revocation
/// published before its PING has been added here, so a token id that is not here is not revoked. Without a lease, or
/// with more live revocations than it may hold, it does not know, and the caller asks Redis.
/// </summary>
public sealed class RevokedTokens(TimeProvider clock, TimeSpan lease, int maxEntries)
{
    private readonly ConcurrentDictionary<string, long> _expiresAt = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly Lease _lease = new(clock, lease);
    private bool _overflowed;

    /// <summary>
    /// How long a revocation must be kept, here and in Redis: until the token's expiry plus the clock skew that
    /// validators allow past it, since until then the token's own expiry does not refuse it yet.
    /// </summary>
    public static TimeSpan KeepFor(DateTimeOffset expiresAt, DateTimeOffset now, TimeSpan clockSkew) => expiresAt + clockSkew - now;

    /// <summary>A lease of zero turns this off: every check asks Redis.</summary>
    public bool Enabled => _lease.Enabled;

    public TimeSpan Lease => lease;

    public int Count => _expiresAt.Count;

    /// <summary>Whether the token id is revoked, or null when this replica cannot tell (no fresh lease, or overflowed).</summary>
    public bool? IsRevoked(string tokenId)
    {
        var now = clock.GetTimestamp();
        if (!_lease.IsHeldAt(now) || Volatile.Read(ref _overflowed))
        {
            return null;
        }

        // An entry past its time belongs to a token that has expired too, and the token's own expiry refuses it.
        return _expiresAt.TryGetValue(tokenId, out var expiresAt) && now < expiresAt;
    }

    /// <summary>A revocation, kept for <paramref name="remaining"/> (what is left of the token's life).</summary>
    public void Add(string tokenId, TimeSpan remaining)
    {
        if (remaining <= TimeSpan.Zero)
        {
            return;
        }

        lock (_gate)
        {
            if (_expiresAt.Count >= maxEntries && !_expiresAt.ContainsKey(tokenId))
            {
                RemoveExpired();
                if (_expiresAt.Count >= maxEntries)
                {
                    // Refusing what it cannot hold would be wrong; answering "not revoked" would be worse. Redis decides.
                    Volatile.Write(ref _overflowed, true);
                    return;
                }
            }

            _expiresAt[tokenId] = clock.GetTimestamp() + (long)(remaining.TotalSeconds * clock.TimestampFrequency);
        }
    }

    /// <summary>Every revocation published before a PING sent at <paramref name="sentAt"/> has been added.</summary>
    public void Confirmed(long sentAt)
    {
        _lease.Confirmed(sentAt);
        lock (_gate)
        {
            if (_expiresAt.Count > maxEntries / 2)
            {
                RemoveExpired();
            }
        }
    }

    /// <summary>The channel was (re)connected or lost: what is held may have missed revocations, and the lease ends.</summary>
    public void Reset()
    {
        lock (_gate)
        {
            _lease.End();
            _expiresAt.Clear();
            Volatile.Write(ref _overflowed, false);
        }
    }

    private void RemoveExpired()
    {
        var now = clock.GetTimestamp();
        foreach (var (tokenId, expiresAt) in _expiresAt)
        {
            if (expiresAt <= now)
            {
                _expiresAt.TryRemove(tokenId, out _);
            }
        }
    }
}
