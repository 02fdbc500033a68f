using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Shop.Inventory.Reservations;
using Shop.ServiceDefaults.Telemetry;

namespace Shop.Tests.Unit;

public sealed class TransactionSlotsTests : IDisposable
{
    private readonly string _name = $"test-{Guid.NewGuid():N}";
    private readonly ConcurrentQueue<(string Instrument, double Value, string? Outcome)> _measurements = new();
    private readonly MeterListener _listener = new();

    public TransactionSlotsTests()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == ShopDiagnostics.SourceName && instrument.Name.StartsWith("shop.inventory.transaction_slots.", StringComparison.Ordinal))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.Start();
    }

    public void Dispose() => _listener.Dispose();

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var ours = false;
        string? outcome = null;
        foreach (var tag in tags)
        {
            ours |= tag.Key == "slots" && Equals(tag.Value, _name);
            outcome = tag.Key == "outcome" ? tag.Value as string : outcome;
        }

        if (ours)
        {
            _measurements.Enqueue((instrument.Name["shop.inventory.transaction_slots.".Length..], value, outcome));
        }
    }

    private double Sum(string instrument) => _measurements.Where(m => m.Instrument == instrument).Sum(m => m.Value);

    [Fact]
    public async Task A_transaction_past_the_bound_waits_for_a_slot_and_the_wait_is_measured()
    {
        var ct = TestContext.Current.CancellationToken;
        var slots = new TransactionSlots(1, _name, Timeout.InfiniteTimeSpan);

        var first = await slots.EnterAsync(ct);
        var second = slots.EnterAsync(ct).AsTask();
        await Task.Delay(50, ct);

        Assert.False(second.IsCompleted);
        Assert.Equal(1, Sum("waiting"));
        Assert.Equal(1, Sum("in_use"));

        first.Dispose();
        using (await second.WaitAsync(TimeSpan.FromSeconds(10), ct))
        {
            Assert.Equal(0, Sum("waiting"));
            Assert.Equal(1, Sum("in_use"));
        }

        Assert.Equal(0, Sum("in_use"));
        var waits = _measurements.Where(m => m.Instrument == "wait").ToList();
        Assert.Equal([(0d, "entered"), (waits[1].Value, "entered")], waits.Select(m => (m.Value, m.Outcome)));
        Assert.True(waits[1].Value >= 0.04, $"the second transaction waited {waits[1].Value:F3} s");
    }

    [Fact]
    public async Task A_cancelled_wait_takes_no_slot_and_stops_counting_as_waiting()
    {
        var ct = TestContext.Current.CancellationToken;
        var slots = new TransactionSlots(1, _name, Timeout.InfiniteTimeSpan);
        var held = await slots.EnterAsync(ct);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(ct);

        var waiting = slots.EnterAsync(cancel.Token).AsTask();
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        Assert.Equal(0, Sum("waiting"));
        Assert.Equal(["entered", "gave_up"], _measurements.Where(m => m.Instrument == "wait").Select(m => m.Outcome));
        held.Dispose();
        using (await slots.EnterAsync(ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), ct))
        {
            Assert.Equal(1, Sum("in_use"));
        }
    }

    [Fact]
    public async Task A_wait_past_the_limit_gives_up_as_a_timeout_and_takes_no_slot()
    {
        var ct = TestContext.Current.CancellationToken;
        var slots = new TransactionSlots(1, _name, TimeSpan.FromMilliseconds(100));
        var held = await slots.EnterAsync(ct);

        var waited = Stopwatch.StartNew();
        await Assert.ThrowsAsync<TimeoutException>(async () => await slots.EnterAsync(ct));

        Assert.True(waited.Elapsed >= TimeSpan.FromMilliseconds(90), $"gave up after {waited.Elapsed}");
        Assert.Equal(0, Sum("waiting"));
        Assert.Equal(1, Sum("in_use"));
        Assert.Equal(["entered", "timed_out"], _measurements.Where(m => m.Instrument == "wait").Select(m => m.Outcome));
        held.Dispose();
        using (await slots.EnterAsync(ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), ct))
        {
            Assert.Equal(1, Sum("in_use"));
        }
    }
}
