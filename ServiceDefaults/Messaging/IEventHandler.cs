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

    Task HandleAsync(EventEnvelope envelope, CancellationToken cancellationToken);
}
