namespace Shop.ServiceDefaults.Messaging;

/// <summary>
/// Handles one event type. Runs inside the consumer's transaction: changes made through the scoped
/// DbContext commit together with the inbox row, so an event takes effect once.
/// </summary>
public interface IEventHandler
{
    string EventType { get; }

    /// <summary>
    /// The version handled. While a producer publishes two versions side by side, a handler takes only its
    /// own, so the event takes effect once; versions no handler takes are acknowledged without effect.
    /// </summary>
    int EventVersion => 1;

    /// <summary>
    /// Whether the event is dropped when a newer version of its aggregate was applied first, on a consumer that
    /// ignores stale versions (<c>ConsumerOptions.IgnoreStaleAggregateVersions</c>). A handler whose effect stays true
    /// whatever came after (an order was received) says no: it takes effect however late it comes, and it neither reads
    /// nor moves the aggregate's version.
    /// </summary>
    bool DropsStaleVersions => true;

    Task HandleAsync(EventEnvelope envelope, CancellationToken cancellationToken);
}
