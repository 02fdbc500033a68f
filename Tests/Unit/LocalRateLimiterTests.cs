using Shop.Gateway.RateLimiting;

namespace Shop.Tests.Unit;

public sealed class LocalRateLimiterTests
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    [Theory]
    [InlineData("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:2::1", "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:3::1", "2001:db8:1:3::/64")]
    [InlineData("::ffff:10.1.2.3", "10.1.2.3")]
    [InlineData("10.1.2.3", "10.1.2.3")]
    public void An_ipv6_client_is_limited_by_its_64_and_an_ipv4_one_by_its_address(string address, string partition)
    {
        // Before, every IPv6 address had its own limit: a client with a /64 could change address for a fresh one.
        Assert.Equal(partition, ClientPartition.Of(System.Net.IPAddress.Parse(address)));
    }

    [Fact]
    public void Exactly_the_permit_limit_is_allowed_within_a_window()
    {
        var time = new FakeTimeProvider();
        var limiter = new LocalSlidingWindowLimiter(time);

        var decisions = Enumerable.Range(0, 8).Select(_ =>
        {
            time.Advance(TimeSpan.FromMilliseconds(100));
            return limiter.TryAcquire("anonymous:10.0.0.1", 5, Window);
        }).ToList();

        Assert.Equal([true, true, true, true, true, false, false, false], decisions.Select(d => d.Allowed));
        Assert.Equal([4, 3, 2, 1, 0, 0, 0, 0], decisions.Select(d => d.Remaining));
        Assert.All(decisions, d => Assert.Equal(5, d.Limit));
    }

    [Fact]
    public void A_refusal_says_when_the_oldest_permit_leaves_the_window()
    {
        var time = new FakeTimeProvider();
        var limiter = new LocalSlidingWindowLimiter(time);
        limiter.TryAcquire("p", 1, Window);

        time.Advance(TimeSpan.FromSeconds(4));
        var refused = limiter.TryAcquire("p", 1, Window);

        Assert.False(refused.Allowed);
        Assert.Equal(TimeSpan.FromSeconds(6), refused.ResetAfter);
    }

    [Fact]
    public void Permits_come_back_as_their_window_slides_past_them()
    {
        var time = new FakeTimeProvider();
        var limiter = new LocalSlidingWindowLimiter(time);
        Assert.True(limiter.TryAcquire("p", 2, Window).Allowed);
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.True(limiter.TryAcquire("p", 2, Window).Allowed);

        time.Advance(TimeSpan.FromSeconds(5) - TimeSpan.FromTicks(1));
        Assert.False(limiter.TryAcquire("p", 2, Window).Allowed);

        time.Advance(TimeSpan.FromTicks(1));
        Assert.True(limiter.TryAcquire("p", 2, Window).Allowed);
        Assert.False(limiter.TryAcquire("p", 2, Window).Allowed);

        time.Advance(Window);
        Assert.Equal([true, true, false], Enumerable.Range(0, 3).Select(_ => limiter.TryAcquire("p", 2, Window).Allowed));
    }

    [Fact]
    public void Partitions_are_limited_independently()
    {
        var time = new FakeTimeProvider();
        var limiter = new LocalSlidingWindowLimiter(time);
        for (var i = 0; i < 3; i++)
        {
            limiter.TryAcquire("anonymous:10.0.0.1", 3, Window);
        }

        Assert.False(limiter.TryAcquire("anonymous:10.0.0.1", 3, Window).Allowed);
        Assert.True(limiter.TryAcquire("anonymous:10.0.0.2", 3, Window).Allowed);
        Assert.True(limiter.TryAcquire("user:t1:10.0.0.1", 3, Window).Allowed);
    }

    [Fact]
    public void Idle_partitions_are_evicted_and_active_ones_are_kept()
    {
        var time = new FakeTimeProvider();
        var limiter = new LocalSlidingWindowLimiter(time);
        for (var i = 0; i < 100; i++)
        {
            limiter.TryAcquire($"anonymous:10.0.0.{i}", 3, Window);
        }

        time.Advance(LocalSlidingWindowLimiter.SweepInterval);
        limiter.TryAcquire("active", 1, TimeSpan.FromMinutes(5));
        Assert.Equal(1, limiter.PartitionCount);

        time.Advance(LocalSlidingWindowLimiter.SweepInterval);
        Assert.False(limiter.TryAcquire("active", 1, TimeSpan.FromMinutes(5)).Allowed);
        Assert.Equal(1, limiter.PartitionCount);
    }
}
