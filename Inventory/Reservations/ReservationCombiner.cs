using System.Collections.Concurrent;

namespace Shop.Inventory.Reservations;

/// <summary>
/// Groups concurrent single-item reservations of the same product, so the store can make them in one transaction.
/// A hot product's stock row commits one transaction at a time, each waiting for the previous one's WAL flush;
/// reservations that arrive while one batch runs are made together in the next, sharing one flush.
/// </summary>
/// <remarks>
/// One drain loop per product at a time: the first request of an idle product starts it, the loop takes what has
/// queued (at most <see cref="MaxBatch"/>) and runs it, until the queue is empty, then retires the product's lane
/// so idle products keep nothing in memory.
/// A request that has waited longer than <c>waitLimit</c> (<see cref="Timeout.InfiniteTimeSpan"/>: no limit) when its
/// batch would start is not made: it fails with a <see cref="TimeoutException"/> (an outage: 503), as a wait for a pooled
/// connection does. Only a batch ahead that a server does not answer keeps a lane waiting that long, and the requests
/// behind it would wait as long again in their own.
/// </remarks>
internal sealed class ReservationCombiner<T>(Func<IReadOnlyList<ReservationCombiner<T>.Pending>, Task> runBatch, TimeSpan waitLimit)
{
    public const int MaxBatch = 32;

    private readonly ConcurrentDictionary<Guid, Lane> _lanes = new();

    /// <summary>One request waiting for its batch; <see cref="Done"/> completes with its outcome.</summary>
    public sealed record Pending(T Request)
    {
        public TaskCompletionSource<ReserveOutcome> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>When it was queued (<see cref="System.Diagnostics.Stopwatch"/> ticks).</summary>
        public long Queued { get; } = System.Diagnostics.Stopwatch.GetTimestamp();
    }

    private sealed class Lane
    {
        public Queue<Pending> Waiting { get; } = new();

        public bool Draining { get; set; }

        public bool Retired { get; set; }
    }

    public Task<ReserveOutcome> EnqueueAsync(Guid productId, T request, CancellationToken cancellationToken)
    {
        var pending = new Pending(request);
        while (true)
        {
            var lane = _lanes.GetOrAdd(productId, _ => new Lane());
            bool start;
            lock (lane)
            {
                if (lane.Retired)
                {
                    continue;
                }

                lane.Waiting.Enqueue(pending);
                start = !lane.Draining;
                lane.Draining = true;
            }

            if (start)
            {
                // The loop serves every caller, so it must not run in (or trace under) the first caller's context.
                using (ExecutionContext.SuppressFlow())
                {
                    _ = Task.Run(() => DrainAsync(productId, lane));
                }
            }

            return pending.Done.Task.WaitAsync(cancellationToken);
        }
    }

    /// <summary>
    /// Makes each request of a batch that has no outcome yet on its own, in order. An error is the answer of the request
    /// that met it alone, unless <paramref name="endsBatch"/> says it leaves nothing to go on with (a broken connection):
    /// then it is thrown, and the batch's runner answers every request still waiting with it.
    /// </summary>
    public static async Task AnswerEachAsync(IEnumerable<Pending> batch, Func<T, Task<ReserveOutcome>> make, Func<Exception, bool> endsBatch)
    {
        foreach (var pending in batch.Where(p => !p.Done.Task.IsCompleted))
        {
            try
            {
                pending.Done.TrySetResult(await make(pending.Request));
            }
            catch (Exception ex) when (!endsBatch(ex))
            {
                pending.Done.TrySetException(ex);
            }
        }
    }

    /// <summary>
    /// Fails <paramref name="pending"/> with a <see cref="TimeoutException"/> if it has waited longer than the limit
    /// since it was queued, and says whether it did. A batch's runner asks again once it has its slot, so that a request's
    /// wait in its lane and for the slot add up to the limit at most.
    /// </summary>
    public bool FailIfWaitedTooLong(Pending pending)
    {
        if (waitLimit == Timeout.InfiniteTimeSpan || System.Diagnostics.Stopwatch.GetElapsedTime(pending.Queued) <= waitLimit)
        {
            return false;
        }

        pending.Done.TrySetException(new TimeoutException(
            $"The reservation waited more than {waitLimit.TotalSeconds:0.#} s for its turn: the database is not keeping up."));
        return true;
    }

    /// <summary>What is left of the limit for the batch's newest request: how long the batch may still wait for a slot.</summary>
    public TimeSpan TimeLeft(IReadOnlyList<Pending> batch) => waitLimit == Timeout.InfiniteTimeSpan
        ? Timeout.InfiniteTimeSpan
        : TimeSpan.FromTicks(Math.Max(0, (waitLimit - System.Diagnostics.Stopwatch.GetElapsedTime(batch.Max(p => p.Queued))).Ticks));

    private async Task DrainAsync(Guid productId, Lane lane)
    {
        while (true)
        {
            var batch = new List<Pending>();
            lock (lane)
            {
                while (batch.Count < MaxBatch && lane.Waiting.TryDequeue(out var next))
                {
                    if (!FailIfWaitedTooLong(next))
                    {
                        batch.Add(next);
                    }
                }

                if (batch.Count == 0)
                {
                    lane.Draining = false;
                    lane.Retired = true;
                    _lanes.TryRemove(KeyValuePair.Create(productId, lane));
                    return;
                }
            }

            try
            {
                await runBatch(batch);
            }
            catch (Exception ex)
            {
                foreach (var pending in batch)
                {
                    pending.Done.TrySetException(ex);
                }
            }

            // A batch runner that forgot one must not leave its caller waiting for ever.
            foreach (var pending in batch)
            {
                pending.Done.TrySetException(new InvalidOperationException("The reservation batch ended without an outcome for this request."));
            }
        }
    }
}
