using System.Diagnostics;
using System.Diagnostics.Metrics;
using Shop.ServiceDefaults.Telemetry;

namespace Shop.Inventory.Reservations;

/// <summary>
/// The replica's bound on concurrent reservation transactions (ADR 0006), and what an operator needs to see it
/// saturate: how many transactions hold a slot, how many wait for one, and how long each waited. Waiting here holds
/// no connection, so a bound that is too low shows as wait time, not as pool exhaustion.
/// </summary>
/// <param name="waitLimit">
/// How long a transaction waits for a slot before it gives up with a <see cref="TimeoutException"/> (an outage: 503): a
/// slot stands for a pooled connection, and waits as long as Npgsql would for one. Slots held by transactions that a
/// server does not answer are not free again until their statements time out. <see cref="Timeout.InfiniteTimeSpan"/>
/// waits for ever.
/// </param>
public sealed class TransactionSlots(int count, string name, TimeSpan waitLimit)
{
    private static readonly Histogram<double> WaitTime = ShopDiagnostics.Meter.CreateHistogram<double>(
        "shop.inventory.transaction_slots.wait", "s", "How long a reservation transaction waited for a slot.");

    private static readonly UpDownCounter<long> Waiting = ShopDiagnostics.Meter.CreateUpDownCounter<long>(
        "shop.inventory.transaction_slots.waiting", "{transaction}", "Reservation transactions waiting for a slot.");

    private static readonly UpDownCounter<long> InUse = ShopDiagnostics.Meter.CreateUpDownCounter<long>(
        "shop.inventory.transaction_slots.in_use", "{transaction}", "Reservation transactions holding a slot.");

    private static readonly KeyValuePair<string, object?> Entered = new("outcome", "entered");
    private static readonly KeyValuePair<string, object?> GaveUp = new("outcome", "gave_up");
    private static readonly KeyValuePair<string, object?> TimedOut = new("outcome", "timed_out");

    private readonly SemaphoreSlim _slots = new(count, count);

    /// <summary>How long <see cref="EnterAsync(CancellationToken)"/> waits for a slot.</summary>
    public TimeSpan WaitLimit => waitLimit;
    private readonly KeyValuePair<string, object?> _tag = new("slots", name);

    /// <summary>
    /// Waits for a slot. The wait is recorded with <c>outcome</c> <c>entered</c>, <c>gave_up</c> when the caller went
    /// away first, or <c>timed_out</c> past the wait limit: those are the longest waits, and the ones that cost a client
    /// its request.
    /// </summary>
    public ValueTask<Slot> EnterAsync(CancellationToken cancellationToken) => EnterAsync(waitLimit, cancellationToken);

    /// <summary>Waits for a slot at most <paramref name="limit"/> (what is left of a caller's own wait limit).</summary>
    public async ValueTask<Slot> EnterAsync(TimeSpan limit, CancellationToken cancellationToken)
    {
        if (_slots.Wait(0, CancellationToken.None))
        {
            WaitTime.Record(0, _tag, Entered);
        }
        else
        {
            var started = Stopwatch.GetTimestamp();
            var outcome = GaveUp;
            Waiting.Add(1, _tag);
            try
            {
                outcome = await _slots.WaitAsync(limit, cancellationToken) ? Entered : TimedOut;
            }
            finally
            {
                Waiting.Add(-1, _tag);
                WaitTime.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, _tag, outcome);
            }

            if (outcome.Equals(TimedOut))
            {
                throw new TimeoutException($"No {name} transaction slot was free within {limit.TotalSeconds:0.#} s: the database is not keeping up.");
            }
        }

        InUse.Add(1, _tag);
        return new Slot(this);
    }

    /// <summary>Held until disposed.</summary>
    public readonly struct Slot(TransactionSlots owner) : IDisposable
    {
        public void Dispose()
        {
            InUse.Add(-1, owner._tag);
            owner._slots.Release();
        }
    }
}
