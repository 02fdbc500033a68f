using Shop.Inventory.Reservations;

namespace Shop.Tests.Unit;

public sealed class ReservationCombinerTests
{
    private static readonly Guid Product = Guid.NewGuid();

    private static ReserveOutcome Made(int request) =>
        new ReserveOutcome.Created(new ReservationResponse(Guid.NewGuid(), Guid.NewGuid(), "Active", DateTimeOffset.UnixEpoch, [new ReservationItem(Product, request)]));

    /// <summary>
    /// A combiner whose batch with request 0 waits for <paramref name="release"/> (so that later requests queue behind it),
    /// and which records every batch's requests, after <paramref name="onBatch"/> has seen them (it may throw).
    /// </summary>
    private static (ReservationCombiner<int> Combiner, TaskCompletionSource FirstRunning, List<int[]> Batches) HeldUpByRequestZero(Task release,
        Func<int[], int[]>? onBatch = null, TimeSpan? waitLimit = null)
    {
        var firstRunning = new TaskCompletionSource();
        var batches = new List<int[]>();
        var combiner = new ReservationCombiner<int>(async batch =>
        {
            var requests = batch.Select(p => p.Request).ToArray();
            lock (batches)
            {
                batches.Add(requests);
            }

            onBatch?.Invoke(requests);
            if (requests[0] == 0)
            {
                firstRunning.SetResult();
                await release;
            }

            foreach (var pending in batch)
            {
                pending.Done.SetResult(Made(pending.Request));
            }
        }, waitLimit ?? Timeout.InfiniteTimeSpan);
        return (combiner, firstRunning, batches);
    }

    [Fact]
    public async Task Requests_that_arrive_while_a_batch_runs_go_together_in_the_next_one_and_all_get_their_outcome()
    {
        var ct = TestContext.Current.CancellationToken;
        var releaseFirst = new TaskCompletionSource();
        var (combiner, firstRunning, batches) = HeldUpByRequestZero(releaseFirst.Task);

        var first = combiner.EnqueueAsync(Product, 0, ct);
        await firstRunning.Task.WaitAsync(ct);
        var queued = Enumerable.Range(1, 40).Select(i => combiner.EnqueueAsync(Product, i, ct)).ToList();
        releaseFirst.SetResult();
        var outcomes = await Task.WhenAll(queued.Prepend(first));

        Assert.Equal([[0], Enumerable.Range(1, 32).ToArray(), Enumerable.Range(33, 8).ToArray()], batches);
        Assert.Equal(Enumerable.Range(0, 41), outcomes.Select(o => ((ReserveOutcome.Created)o).Reservation.Items[0].Quantity));
    }

    [Fact]
    public async Task A_failing_batch_fails_each_of_its_requests_and_later_requests_still_run()
    {
        var ct = TestContext.Current.CancellationToken;
        var releaseFirst = new TaskCompletionSource();
        var (combiner, firstRunning, batches) = HeldUpByRequestZero(releaseFirst.Task,
            batch => batch[0] == 1 ? throw new InvalidOperationException("database gone") : batch);

        // Five requests queue behind a running batch and go together in the next, which fails: each of the five fails.
        var first = combiner.EnqueueAsync(Product, 0, ct);
        await firstRunning.Task.WaitAsync(ct);
        var failing = Enumerable.Range(1, 5).Select(i => combiner.EnqueueAsync(Product, i, ct)).ToList();
        releaseFirst.SetResult();

        Assert.IsType<ReserveOutcome.Created>(await first);
        foreach (var request in failing)
        {
            await Assert.ThrowsAsync<InvalidOperationException>(() => request);
        }

        Assert.IsType<ReserveOutcome.Created>(await combiner.EnqueueAsync(Product, 6, ct));
        Assert.Equal([1, 5, 1], batches.Select(b => b.Length));
    }

    [Fact]
    public async Task A_batch_runner_that_forgets_a_request_fails_it_instead_of_leaving_it_waiting()
    {
        var ct = TestContext.Current.CancellationToken;
        var combiner = new ReservationCombiner<int>(_ => Task.CompletedTask, Timeout.InfiniteTimeSpan);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => combiner.EnqueueAsync(Product, 1, ct));
        Assert.Contains("without an outcome", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Different_products_are_not_combined()
    {
        var ct = TestContext.Current.CancellationToken;
        var releaseFirst = new TaskCompletionSource();
        var (combiner, firstRunning, batches) = HeldUpByRequestZero(releaseFirst.Task);

        // While one product's batch runs, requests of ten others queue: had they been keyed by anything but their product,
        // they would go together as one batch of ten behind it.
        var first = combiner.EnqueueAsync(Product, 0, ct);
        await firstRunning.Task.WaitAsync(ct);
        var others = Enumerable.Range(1, 10).Select(i => combiner.EnqueueAsync(Guid.NewGuid(), i, ct)).ToList();
        releaseFirst.SetResult();
        await Task.WhenAll(others.Prepend(first));

        Assert.All(batches, batch => Assert.Single(batch));
        Assert.Equal(11, batches.Count);
    }

    [Fact]
    public async Task Made_one_by_one_a_request_that_fails_answers_only_for_itself()
    {
        var batch = Enumerable.Range(0, 3).Select(i => new ReservationCombiner<int>.Pending(i)).ToList();

        await ReservationCombiner<int>.AnswerEachAsync(batch,
            request => request == 1 ? Task.FromException<ReserveOutcome>(new TimeoutException("statement timeout")) : Task.FromResult(Made(request)),
            endsBatch: _ => false);

        Assert.IsType<ReserveOutcome.Created>(await batch[0].Done.Task);
        await Assert.ThrowsAsync<TimeoutException>(() => batch[1].Done.Task);
        Assert.IsType<ReserveOutcome.Created>(await batch[2].Done.Task);
    }

    [Fact]
    public async Task Made_one_by_one_an_error_that_ends_the_batch_is_thrown_and_leaves_the_rest_to_the_runner()
    {
        var batch = Enumerable.Range(0, 3).Select(i => new ReservationCombiner<int>.Pending(i)).ToList();
        var made = new List<int>();

        await Assert.ThrowsAsync<IOException>(() => ReservationCombiner<int>.AnswerEachAsync(batch, request =>
        {
            made.Add(request);
            return request == 1 ? Task.FromException<ReserveOutcome>(new IOException("connection lost")) : Task.FromResult(Made(request));
        }, endsBatch: ex => ex is IOException));

        Assert.Equal([0, 1], made);
        Assert.True(batch[0].Done.Task.IsCompletedSuccessfully);
        Assert.False(batch[1].Done.Task.IsCompleted);
        Assert.False(batch[2].Done.Task.IsCompleted);
    }

    [Fact]
    public async Task Made_one_by_one_requests_the_batch_already_answered_are_not_made_again()
    {
        var batch = Enumerable.Range(0, 3).Select(i => new ReservationCombiner<int>.Pending(i)).ToList();
        batch[0].Done.SetResult(Made(0));
        var made = new List<int>();

        await ReservationCombiner<int>.AnswerEachAsync(batch, request =>
        {
            made.Add(request);
            return Task.FromResult(Made(request));
        }, endsBatch: _ => true);

        Assert.Equal([1, 2], made);
    }

    [Fact]
    public async Task Requests_that_waited_past_the_limit_behind_a_batch_fail_as_a_timeout_without_being_made()
    {
        var ct = TestContext.Current.CancellationToken;
        var releaseFirst = new TaskCompletionSource();
        var (combiner, firstRunning, batches) = HeldUpByRequestZero(releaseFirst.Task, waitLimit: TimeSpan.FromSeconds(1));

        var first = combiner.EnqueueAsync(Product, 0, ct);
        await firstRunning.Task.WaitAsync(TimeSpan.FromSeconds(10), ct);
        var stale = Enumerable.Range(1, 3).Select(i => combiner.EnqueueAsync(Product, i, ct)).ToList();
        await Task.Delay(1500, ct);
        releaseFirst.SetResult();

        Assert.IsType<ReserveOutcome.Created>(await first);
        foreach (var request in stale)
        {
            await Assert.ThrowsAsync<TimeoutException>(() => request);
        }

        // Only the batch ahead ran; a request queued now is made as usual.
        Assert.IsType<ReserveOutcome.Created>(await combiner.EnqueueAsync(Product, 4, ct));
        Assert.Equal([[0], [4]], batches);
    }

    [Fact]
    public void A_batch_may_wait_for_its_slot_what_is_left_of_its_newest_requests_limit_and_without_a_limit_for_ever()
    {
        var limited = new ReservationCombiner<int>(_ => Task.CompletedTask, TimeSpan.FromMinutes(1));
        var unlimited = new ReservationCombiner<int>(_ => Task.CompletedTask, Timeout.InfiniteTimeSpan);
        var batch = new[] { new ReservationCombiner<int>.Pending(1) };

        var left = limited.TimeLeft(batch);
        Assert.InRange(left, TimeSpan.FromSeconds(50), TimeSpan.FromMinutes(1));
        Assert.Equal(Timeout.InfiniteTimeSpan, unlimited.TimeLeft(batch));
        Assert.False(limited.FailIfWaitedTooLong(batch[0]));
        Assert.False(unlimited.FailIfWaitedTooLong(batch[0]));
        Assert.False(batch[0].Done.Task.IsCompleted);
    }
}
