using System.Diagnostics;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Shop.ServiceDefaults.Correlation;
using Shop.ServiceDefaults.Messaging.Schemas;

namespace Shop.ServiceDefaults.Messaging;

public static class MessagingModel
{
    /// <summary>Maps the outbox and inbox tables created by the messaging migrations.</summary>
    public static ModelBuilder AddMessagingTables(this ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<OutboxMessage>(outbox =>
        {
            outbox.ToTable("outbox_messages");
            outbox.HasKey(m => m.Id);
            outbox.Property(m => m.Id).UseIdentityAlwaysColumn();
            outbox.Property(m => m.Payload).HasColumnType("jsonb");
        });
        modelBuilder.Entity<InboxMessage>(inbox =>
        {
            inbox.ToTable("inbox_messages");
            inbox.HasKey(m => new { m.Consumer, m.EventId });
        });
        return modelBuilder;
    }

    /// <summary>
    /// Adds an event to the outbox of this unit of work: it is committed with the state change or not at all.
    /// The current trace context and correlation id travel with it, so the consumer joins this trace.
    /// </summary>
    /// <exception cref="EventValidationException">
    /// The envelope or data does not match the schema registered for the event type and version, or none is registered.
    /// </exception>
    public static EventEnvelope AddEvent<T>(this DbContext db, string exchange, string eventType, int eventVersion,
        string tenantId, string aggregateId, long aggregateVersion, T data, TimeProvider? clock = null)
    {
        var envelope = NewEnvelope(eventType, eventVersion, tenantId, aggregateId, aggregateVersion, data, clock);
        db.Set<OutboxMessage>().Add(OutboxMessage.For(exchange, envelope, JsonSerializer.Serialize(envelope, EventEnvelope.JsonOptions)));
        return envelope;
    }

    /// <summary>
    /// An envelope for <paramref name="data"/> carrying the current trace context and correlation id, checked
    /// against its schema. For producers that write the outbox row themselves (see <see cref="OutboxSql"/>).
    /// </summary>
    /// <exception cref="EventValidationException">The envelope or data does not match the registered schema.</exception>
    public static EventEnvelope NewEnvelope<T>(string eventType, int eventVersion, string tenantId, string aggregateId, long aggregateVersion,
        T data, TimeProvider? clock = null)
    {
        var activity = Activity.Current;
        var envelope = new EventEnvelope(
            Guid.CreateVersion7(),
            eventType,
            eventVersion,
            (clock ?? TimeProvider.System).GetUtcNow(),
            tenantId,
            aggregateId,
            aggregateVersion,
            CorrelationContext.Current,
            activity?.Id is { } id && activity.IdFormat == ActivityIdFormat.W3C ? id : null,
            activity?.TraceStateString,
            JsonSerializer.SerializeToElement(data, EventEnvelope.JsonOptions));
        EventSchemas.EnsureValid(envelope);
        return envelope;
    }
}
