namespace Shop.ServiceDefaults.Messaging;

/// <summary>
/// Handles one event type. Runs inside the consumer's transaction: changes made through the scoped
/// DbContext commit together with the inbox row, so an event takes effect once.
/// </summary>
public interface IEventHandler
{
    string EventType { get; }

    Task HandleAsync(EventEnvelope envelope, CancellationToken cancellationToken);
}
