using System.Globalization;
using System.Text;

namespace Shop.ServiceDefaults.Messaging;

/// <summary>The AMQP headers the consumer and the dead-letter tools read and write.</summary>
public static class MessageHeaders
{
    /// <summary>Retries made so far (absent on a first delivery).</summary>
    public const string Attempt = "x-attempt";

    /// <summary>How often the handler could not reach a dependency (absent until it first could not).</summary>
    public const string Outages = "x-outages";

    public const string Reason = "x-dead-letter-reason";
    public const string ExceptionType = "x-exception-type";
    public const string FailedAt = "x-failed-at";
    public const string OriginalQueue = "x-original-queue";

    /// <summary>Handling attempts made before the message was dead-lettered.</summary>
    public const string Attempts = "x-attempts";

    private static readonly string[] DeadLetterHeaders = [Attempt, Outages, Reason, ExceptionType, FailedAt, OriginalQueue, Attempts];

    // Written by the broker when it dead-letters (retry queue TTL, delivery limit); a republished copy starts clean.
    private static readonly string[] BrokerHeaders = ["x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
        "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason", "x-delivery-count"];

    public static int RetriesOf(IDictionary<string, object?>? headers) => Count(headers, Attempt);

    public static int OutagesOf(IDictionary<string, object?>? headers) => Count(headers, Outages);

    /// <summary>The same headers, minus the broker's bookkeeping, with <c>x-attempt</c> set.</summary>
    public static Dictionary<string, object?> ForRetry(IDictionary<string, object?>? headers, int retries)
    {
        var copy = Clean(headers, BrokerHeaders);
        copy[Attempt] = retries;
        return copy;
    }

    /// <summary>The same headers, minus the broker's bookkeeping, with <c>x-outages</c> set and <c>x-attempt</c> as it was.</summary>
    public static Dictionary<string, object?> ForOutage(IDictionary<string, object?>? headers, int outages)
    {
        var copy = Clean(headers, BrokerHeaders);
        copy[Outages] = outages;
        return copy;
    }

    public static Dictionary<string, object?> ForDeadLetter(IDictionary<string, object?>? headers, string originalQueue, int attempts,
        Exception reason, DateTimeOffset failedAt) =>
        ForDeadLetter(headers, originalQueue, attempts, reason.GetType().FullName!, Describe(reason), failedAt);

    /// <summary>"Type: message", with the inner exceptions (where a database error usually says what went wrong).</summary>
    public static string Describe(Exception exception)
    {
        var parts = new List<string>();
        for (var current = exception; current is not null; current = current.InnerException)
        {
            parts.Add($"{current.GetType().Name}: {current.Message}");
        }

        return string.Join(" ---> ", parts);
    }

    public static Dictionary<string, object?> ForDeadLetter(IDictionary<string, object?>? headers, string originalQueue, int attempts,
        string exceptionType, string reason, DateTimeOffset failedAt)
    {
        var copy = Clean(headers, BrokerHeaders);
        copy[Reason] = reason.Length > 2000 ? reason[..2000] : reason;
        copy[ExceptionType] = exceptionType;
        copy[FailedAt] = failedAt.ToString("O", CultureInfo.InvariantCulture);
        copy[OriginalQueue] = originalQueue;
        copy[Attempts] = attempts;
        return copy;
    }

    /// <summary>For a replay: the original headers with the attempt counter and the failure reset.</summary>
    public static Dictionary<string, object?> ForReplay(IDictionary<string, object?>? headers) => Clean(headers, [.. BrokerHeaders, .. DeadLetterHeaders]);

    /// <summary>A header value as text (the client hands strings over as UTF-8 bytes).</summary>
    public static string? Text(object? value) => value switch
    {
        null => null,
        byte[] bytes => Encoding.UTF8.GetString(bytes),
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString(),
    };

    public static string? Text(IDictionary<string, object?>? headers, string name) =>
        headers is not null && headers.TryGetValue(name, out var value) ? Text(value) : null;

    private static int Count(IDictionary<string, object?>? headers, string name) =>
        int.TryParse(Text(headers, name), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : 0;

    private static Dictionary<string, object?> Clean(IDictionary<string, object?>? headers, string[] remove)
    {
        var copy = headers is null ? [] : new Dictionary<string, object?>(headers);
        foreach (var name in remove)
        {
            copy.Remove(name);
        }

        return copy;
    }
}
