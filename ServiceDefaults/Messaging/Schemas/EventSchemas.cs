using System.Collections.Frozen;
using System.Globalization;
using System.Reflection;

namespace Shop.ServiceDefaults.Messaging.Schemas;

/// <summary>
/// The contract of every event: one schema per event type and version, embedded from
/// <c>Messaging/Schemas/&lt;eventType&gt;.v&lt;version&gt;.json</c>. Producers validate before an event enters
/// the outbox; consumers validate before handling and dead-letter what does not match.
/// </summary>
public static class EventSchemas
{
    private const string ResourcePrefix = "messaging-schemas/";

    private static readonly Lazy<FrozenDictionary<(string EventType, int Version), JsonSchema>> Schemas = new(Load);

    /// <summary>Every registered event type and version.</summary>
    public static IReadOnlyCollection<(string EventType, int Version)> Registered => Schemas.Value.Keys;

    public static JsonSchema? Find(string eventType, int version) => Schemas.Value.GetValueOrDefault((eventType, version));

    /// <summary>What is wrong with the envelope and its data (empty when valid), each as "path: problem".</summary>
    public static IReadOnlyList<string> Validate(EventEnvelope envelope)
    {
        var errors = new List<string>();
        if (envelope.EventId == Guid.Empty)
        {
            errors.Add("$.eventId: must be a non-empty uuid");
        }

        if (string.IsNullOrWhiteSpace(envelope.EventType))
        {
            errors.Add("$.eventType: is required");
        }

        if (envelope.EventVersion < 1)
        {
            errors.Add("$.eventVersion: must be at least 1");
        }

        if (string.IsNullOrWhiteSpace(envelope.TenantId))
        {
            errors.Add("$.tenantId: is required");
        }

        if (string.IsNullOrWhiteSpace(envelope.AggregateId))
        {
            errors.Add("$.aggregateId: is required");
        }

        if (errors.Count > 0)
        {
            return errors;
        }

        if (Find(envelope.EventType, envelope.EventVersion) is not { } schema)
        {
            return [$"$.eventType: no schema is registered for {envelope.EventType} v{envelope.EventVersion}"];
        }

        return schema.Validate(envelope.Data, "$.data");
    }

    /// <exception cref="EventValidationException">The envelope or its data breaks the contract.</exception>
    public static void EnsureValid(EventEnvelope envelope)
    {
        var errors = Validate(envelope);
        if (errors.Count > 0)
        {
            throw new EventValidationException(envelope.EventType, envelope.EventVersion, errors);
        }
    }

    private static FrozenDictionary<(string, int), JsonSchema> Load()
    {
        var assembly = typeof(EventSchemas).Assembly;
        var schemas = new Dictionary<(string, int), JsonSchema>();
        foreach (var resource in assembly.GetManifestResourceNames().Where(r => r.StartsWith(ResourcePrefix, StringComparison.Ordinal)))
        {
            var key = ParseName(resource[ResourcePrefix.Length..]);
            schemas.Add(key, JsonSchema.Parse(Read(assembly, resource)));
        }

        return schemas.ToFrozenDictionary();
    }

    /// <summary><c>order.created.v1.json</c> → (order.created, 1).</summary>
    internal static (string EventType, int Version) ParseName(string fileName)
    {
        var stem = fileName.EndsWith(".json", StringComparison.Ordinal) ? fileName[..^".json".Length] : fileName;
        var at = stem.LastIndexOf(".v", StringComparison.Ordinal);
        if (at <= 0 || !int.TryParse(stem[(at + 2)..], NumberStyles.None, CultureInfo.InvariantCulture, out var version) || version < 1)
        {
            throw new InvalidOperationException($"Event schema '{fileName}' must be named <eventType>.v<version>.json.");
        }

        return (stem[..at], version);
    }

    private static string Read(Assembly assembly, string resource)
    {
        using var stream = assembly.GetManifestResourceStream(resource)!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}

/// <summary>An event that does not match its schema (or has none): a defect of the producer, never retried.</summary>
public sealed class EventValidationException(string eventType, int eventVersion, IReadOnlyList<string> errors)
    : Exception($"Event {eventType} v{eventVersion} breaks its contract: {string.Join("; ", errors)}")
{
    public IReadOnlyList<string> Errors { get; } = errors;
}
