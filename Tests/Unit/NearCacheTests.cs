using Shop.Inventory.Products;

namespace Shop.Tests.Unit;

public sealed class NearCacheTests
{
    private static readonly TimeSpan Lease = TimeSpan.FromMilliseconds(250);
    private static readonly Guid Key = Guid.NewGuid();

    private readonly FakeTimeProvider _time = new();

    private NearCache<string> Cache(int maxEntries = 100) => new(_time, Lease, TimeSpan.FromSeconds(60), maxEntries);

    [Fact]
    public void Nothing_is_served_before_the_invalidation_stream_has_answered_a_ping()
    {
        var cache = Cache();
        Assert.True(cache.Fill(cache.Generation, Key, "v1"));
        Assert.False(cache.TryGet(Key, out _));

        cache.Confirmed(_time.GetTimestamp());
        Assert.True(cache.TryGet(Key, out var value));
        Assert.Equal("v1", value);
    }

    [Fact]
    public void Entries_are_served_until_one_lease_after_the_last_answered_ping_was_sent_not_received()
    {
        var cache = Cache();
        var sentAt = _time.GetTimestamp();
        _time.Advance(TimeSpan.FromMilliseconds(100));
        cache.Confirmed(sentAt);
        cache.Fill(cache.Generation, Key, "v1");

        _time.Advance(TimeSpan.FromMilliseconds(149));
        Assert.True(cache.TryGet(Key, out _));
        _time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.False(cache.TryGet(Key, out _));

        // An answer to an older ping never wrongly extends the lease...
        cache.Confirmed(sentAt);
        Assert.False(cache.IsFresh);
        var newer = _time.GetTimestamp();
        cache.Confirmed(newer);
        Assert.True(cache.TryGet(Key, out _));

        // ...nor shortens one that a newer answer gave: answers to pings sent 100 ms apart arrive newest first.
        _time.Advance(TimeSpan.FromMilliseconds(200));
        cache.Confirmed(newer - TimeSpan.FromMilliseconds(100).Ticks);
        Assert.True(cache.IsFresh);
        Assert.True(cache.TryGet(Key, out _));
    }

    [Fact]
    public void A_value_read_before_an_invalidation_is_not_kept_after_it()
    {
        var cache = Cache();
        cache.Confirmed(_time.GetTimestamp());
        var readStarted = cache.Generation;

        cache.Invalidate(Key);

        Assert.False(cache.Fill(readStarted, Key, "old"));
        Assert.False(cache.TryGet(Key, out _));
        Assert.True(cache.Fill(cache.Generation, Key, "new"));
        Assert.True(cache.TryGet(Key, out var value));
        Assert.Equal("new", value);
    }

    [Fact]
    public void An_invalidation_removes_the_entry_and_a_reset_removes_everything_and_ends_the_lease()
    {
        var cache = Cache();
        cache.Confirmed(_time.GetTimestamp());
        var other = Guid.NewGuid();
        cache.Fill(cache.Generation, Key, "a");
        cache.Fill(cache.Generation, other, "b");

        cache.Invalidate(Key);
        Assert.False(cache.TryGet(Key, out _));
        Assert.True(cache.TryGet(other, out _));

        var before = cache.Generation;
        cache.Reset();
        Assert.False(cache.IsFresh);
        Assert.Equal(0, cache.Count);
        Assert.False(cache.Fill(before, other, "b"));
    }

    [Fact]
    public void Entries_age_out_and_a_full_cache_starts_again_rather_than_grow()
    {
        var cache = Cache(maxEntries: 2);
        cache.Fill(cache.Generation, Key, "a");
        cache.Fill(cache.Generation, Guid.NewGuid(), "b");
        Assert.Equal(2, cache.Count);
        cache.Fill(cache.Generation, Key, "a2");
        Assert.Equal(2, cache.Count);
        cache.Fill(cache.Generation, Guid.NewGuid(), "c");
        Assert.Equal(1, cache.Count);

        var fresh = Guid.NewGuid();
        cache.Fill(cache.Generation, fresh, "d");
        _time.Advance(TimeSpan.FromSeconds(60));
        cache.Confirmed(_time.GetTimestamp());
        Assert.False(cache.TryGet(fresh, out _));
    }

    [Fact]
    public void A_value_that_came_from_the_cache_itself_replaces_its_entry_without_extending_it()
    {
        var cache = Cache();
        cache.Fill(cache.Generation, Key, "v1");
        _time.Advance(TimeSpan.FromSeconds(59));
        cache.Confirmed(_time.GetTimestamp());

        Assert.True(cache.Fill(cache.Generation, Key, "v1 with new availability", renew: false));
        Assert.True(cache.TryGet(Key, out var value));
        Assert.Equal("v1 with new availability", value);
        _time.Advance(TimeSpan.FromSeconds(1));
        cache.Confirmed(_time.GetTimestamp());
        Assert.False(cache.TryGet(Key, out _));
        // Nothing held (it aged out, or was never there): nothing to replace.
        Assert.False(cache.Fill(cache.Generation, Key, "v1", renew: false));
        Assert.False(cache.Fill(cache.Generation, Guid.NewGuid(), "x", renew: false));
        Assert.False(cache.TryGet(Key, out _));
    }

    [Fact]
    public void A_lease_of_zero_keeps_nothing()
    {
        var cache = new NearCache<string>(_time, TimeSpan.Zero, TimeSpan.FromSeconds(60), 100);
        cache.Confirmed(_time.GetTimestamp());
        Assert.False(cache.Enabled);
        Assert.False(cache.Fill(cache.Generation, Key, "a"));
        Assert.False(cache.TryGet(Key, out _));
    }
}
