using System.Diagnostics;
using System.Diagnostics.Metrics;
using Shop.ServiceDefaults.Telemetry;

namespace Shop.Inventory.Reservations;

/// <summary>
/// The replica's bound on concurrent reservation transactions (ADR 0006), and what an operator needs to see it
/// saturate: how many transactions hold a slot, how many wait for one, and how long each waited. Waiting here holds
/// no connection, so a bound that is too low shows as wait time, not as pool exhaustion.
/// </summary>
public sealed class TransactionSlots(int count, string name)
{
    private static readonly Histogram<double> WaitTime = ShopDiagnostics.Meter.CreateHistogram<double>(
        "shop.inventory.transaction_slots.wait", "s", "How long a reservation transaction waited for a slot.");

    private static readonly UpDownCounter<long> Waiting = ShopDiagnostics.Meter.CreateUpDownCounter<long>(
        "shop.inventory.transaction_slots.waiting", "{transaction}", "Reservation transactions waiting for a slot.");

    private static readonly UpDownCounter<long> InUse = ShopDiagnostics.Meter.CreateUpDownCounter<long>(
        "shop.inventory.transaction_slots.in_use", "{transaction}", "Reservation transactions holding a slot.");

    private static readonly KeyValuePair<string, object?> Entered = new("outcome", "entered");
    private static readonly KeyValuePair<string, object?> GaveUp = new("outcome", "gave_up");

    private readonly SemaphoreSlim _slots = new(count, count);
    private readonly KeyValuePair<string, object?> _tag = new("slots", name);

    /// <summary>
    /// Waits for a slot. The wait is recorded with <c>outcome</c> <c>entered</c>, or <c>gave_up</c> when the caller went
    /// away first: those are the longest waits, and the ones that cost a client its request.
    /// </summary>
    public async ValueTask<Slot> EnterAsync(CancellationToken cancellationToken)
    {
        if (_slots.Wait(0, CancellationToken.None))
        {
            WaitTime.Record(0, _tag, Entered);
        }
        else
        {
            var started = Stopwatch.GetTimestamp();
            var entered = false;
            Waiting.Add(1, _tag);
            try
            {
                await _slots.WaitAsync(cancellationToken);
                entered = true;
            }
            finally
            {
                Waiting.Add(-1, _tag);
                WaitTime.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, _tag, entered ? Entered : GaveUp);
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
