using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using RabbitMQ.Client;

namespace Shop.ServiceDefaults.Messaging.DeadLetters;

/// <summary>A message in a dead-letter queue, as read from its properties, headers and envelope.</summary>
public sealed record DeadLetter(
    string MessageId,
    string Queue,
    string OriginalQueue,
    string? EventType,
    string? TenantId,
    string? Reason,
    string? ExceptionType,
    DateTimeOffset? FailedAt,
    int Attempts,
    IReadOnlyDictionary<string, string?> Headers,
    string Body)
{
    /// <param name="originalQueue">The queue the dead-letter queue belongs to (where a replay sends the message).</param>
    public static DeadLetter Read(string queue, string originalQueue, IReadOnlyBasicProperties properties, ReadOnlyMemory<byte> body)
    {
        var headers = properties.Headers ?? new Dictionary<string, object?>();
        string? eventType = properties.Type, tenantId = null, eventId = null;
        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.ValueKind == JsonValueKind.Object)
            {
                eventType ??= StringOf(document.RootElement, "eventType");
                tenantId = StringOf(document.RootElement, "tenantId");
                eventId = StringOf(document.RootElement, "eventId");
            }
        }
        catch (JsonException)
        {
        }

        var failedAt = MessageHeaders.Text(headers, MessageHeaders.FailedAt);
        return new DeadLetter(
            // Every message the relay publishes has an id; anything else is named by its content.
            properties.MessageId is { Length: > 0 } id ? id : eventId ?? "sha256-" + Convert.ToHexStringLower(SHA256.HashData(body.Span))[..32],
            queue,
            originalQueue,
            eventType,
            tenantId,
            MessageHeaders.Text(headers, MessageHeaders.Reason)
                ?? (MessageHeaders.Text(headers, "x-first-death-reason") is { } brokerReason ? $"Dead-lettered by the broker ({brokerReason})" : null),
            MessageHeaders.Text(headers, MessageHeaders.ExceptionType),
            DateTimeOffset.TryParse(failedAt, CultureInfo.InvariantCulture, DateTimeStyles.None, out var at) ? at : null,
            int.TryParse(MessageHeaders.Text(headers, MessageHeaders.Attempts), NumberStyles.None, CultureInfo.InvariantCulture, out var attempts) ? attempts : 0,
            headers.Where(h => h.Key != "x-death").ToDictionary(h => h.Key, h => MessageHeaders.Text(h.Value)),
            Encoding.UTF8.GetString(body.Span));
    }

    private static string? StringOf(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
