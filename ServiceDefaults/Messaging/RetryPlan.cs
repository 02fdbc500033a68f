namespace Shop.ServiceDefaults.Messaging;

/// <summary>
/// Where a message goes after its handler fails: retry queue N (<c>{queue}.retry.N</c>, holding it for the
/// N-th delay before dead-lettering it back to the queue) while delays remain, then <c>{queue}.dlq</c>.
/// </summary>
public sealed record RetryPlan(string Queue, IReadOnlyList<TimeSpan> Delays)
{
    public string DeadLetterQueue => $"{Queue}.dlq";

    public string RetryQueue(int retry) => $"{Queue}.retry.{retry}";

    /// <summary>The retry queues to declare, in order, with their delays.</summary>
    public IEnumerable<(string Queue, TimeSpan Delay)> RetryQueues => Delays.Select((delay, i) => (RetryQueue(i + 1), delay));

    /// <param name="retriesSoFar">The message's <c>x-attempt</c> header: 0 on its first delivery.</param>
    public FailureRoute AfterFailure(int retriesSoFar) => retriesSoFar < Delays.Count
        ? new FailureRoute(RetryQueue(retriesSoFar + 1), retriesSoFar + 1, IsDeadLetter: false)
        : new FailureRoute(DeadLetterQueue, retriesSoFar, IsDeadLetter: true);

    /// <summary>
    /// Where a message goes when its handler could not reach a dependency (see <c>DependencyFailure.IsOutage</c>):
    /// back through the retry queues, each wait as long as the retry of the same number and the last one repeated,
    /// never to the dead-letter queue, and with its retries unchanged, as the attempt was not made. Null when
    /// the plan has no retry queues: the failure then counts as any other.
    /// </summary>
    /// <param name="outagesSoFar">The message's <c>x-outages</c> header: how often it has waited for a dependency before.</param>
    /// <param name="retriesSoFar">The message's <c>x-attempt</c> header.</param>
    public FailureRoute? AfterOutage(int outagesSoFar, int retriesSoFar) => Delays.Count == 0
        ? null
        : new FailureRoute(RetryQueue(OutageRetry(outagesSoFar)), retriesSoFar, IsDeadLetter: false);

    /// <summary>How long <see cref="AfterOutage"/>'s queue holds the message.</summary>
    public TimeSpan DelayAfterOutage(int outagesSoFar) => Delays[OutageRetry(outagesSoFar) - 1];

    private int OutageRetry(int outagesSoFar) => Math.Min(outagesSoFar + 1, Delays.Count);
}

/// <param name="Queue">Where to publish the failed message.</param>
/// <param name="Retries">Retries made once it is published there: its new <c>x-attempt</c> (for the dead-letter queue, unchanged).</param>
public readonly record struct FailureRoute(string Queue, int Retries, bool IsDeadLetter)
{
    /// <summary>Handling attempts made so far, the one that just failed included.</summary>
    public int Attempts => IsDeadLetter ? Retries + 1 : Retries;
}
