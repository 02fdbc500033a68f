using Microsoft.Extensions.Logging.Abstractions;
using Shop.ServiceDefaults.Caching;

namespace Shop.Tests.Unit;

public sealed class LeaseWaitTests
{
    [Fact]
    public async Task A_writer_waits_a_whole_lease_on_the_clock_that_counts_leases_even_when_its_delay_ends_early()
    {
        // Timers that fire 8 ms early, as a delay on a coarse clock can, while timestamps are exact.
        var clock = new EarlyTimers(TimeSpan.FromMilliseconds(8));
        var lease = TimeSpan.FromMilliseconds(40);
        var subscription = new Subscription(lease, clock);

        for (var round = 0; round < 5; round++)
        {
            var start = clock.GetTimestamp();
            await subscription.WaitAsync();
            Assert.True(clock.GetElapsedTime(start) >= lease, $"Waited {clock.GetElapsedTime(start).TotalMilliseconds} ms of a {lease.TotalMilliseconds} ms lease.");
        }
    }

    private sealed class EarlyTimers(TimeSpan early) : TimeProvider
    {
        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            System.CreateTimer(callback, state, dueTime > early ? dueTime - early : dueTime, period);
    }

    private sealed class Subscription(TimeSpan lease, TimeProvider clock)
        : LeasedSubscription("localhost:1", "test", lease, clock, NullLogger.Instance)
    {
        public Task WaitAsync() => WaitOneLeaseAsync();

        protected override string What => "Test";

        protected override Task OnSubscribedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        protected override void OnMessage(string payload)
        {
        }

        protected override void OnConfirmed(long sentAt)
        {
        }

        protected override void OnLost()
        {
        }
    }
}
