using System.Text.Json;
using Npgsql;
using NpgsqlTypes;

namespace Shop.ServiceDefaults.Messaging;

/// <summary>
/// Writes outbox rows from hand-written SQL, for services whose state changes are plain Npgsql commands: the
/// row goes into the same transaction (or the same statement) as the change.
/// </summary>
public static class OutboxSql
{
    /// <summary>The columns and values of one outbox row, for an <c>INSERT … SELECT</c> inside a larger statement.</summary>
    public const string Columns = "event_id, exchange, routing_key, payload, created_at, next_attempt_at";

    public static string Payload(EventEnvelope envelope) => JsonSerializer.Serialize(envelope, EventEnvelope.JsonOptions);

    private const string Insert = $"INSERT INTO outbox_messages ({Columns}) VALUES ($1, $2, $3, $4, $5, $5)";

    /// <summary>Inserts one event in the caller's transaction.</summary>
    public static async Task InsertAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string exchange, EventEnvelope envelope,
        CancellationToken cancellationToken)
    {
        await using var insert = new NpgsqlCommand(Insert, connection, transaction);
        AddParameters(insert.Parameters, exchange, envelope);
        await insert.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The same insert as one statement of an <see cref="NpgsqlBatch"/>: it travels with the change it announces.</summary>
    public static NpgsqlBatchCommand InsertCommand(string exchange, EventEnvelope envelope)
    {
        var insert = new NpgsqlBatchCommand(Insert);
        AddParameters(insert.Parameters, exchange, envelope);
        return insert;
    }

    private static void AddParameters(NpgsqlParameterCollection parameters, string exchange, EventEnvelope envelope)
    {
        parameters.Add(new() { Value = envelope.EventId });
        parameters.Add(new() { Value = exchange });
        parameters.Add(new() { Value = envelope.EventType });
        parameters.Add(new() { Value = Payload(envelope), NpgsqlDbType = NpgsqlDbType.Jsonb });
        parameters.Add(new() { Value = envelope.OccurredAt, NpgsqlDbType = NpgsqlDbType.TimestampTz });
    }
}
