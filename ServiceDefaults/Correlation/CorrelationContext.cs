using System.Buffers;

namespace Shop.ServiceDefaults.Correlation;

/// <summary>The correlation id of the work in progress: set per request and per consumed message, flows with async calls.</summary>
public static class CorrelationContext
{
    public const string HeaderName = "X-Correlation-ID";
    public const string LogScopeKey = "CorrelationId";

    private static readonly AsyncLocal<string?> CurrentId = new();

    public static string? Current
    {
        get => CurrentId.Value;
        set => CurrentId.Value = value;
    }

    public static string NewId() => Guid.NewGuid().ToString("N");

    /// <summary>Accepts a caller's id only if it is short and plain, so it is safe to log and echo.</summary>
    public static bool IsValid(string? id) =>
        !string.IsNullOrEmpty(id) && id.Length <= 64 && !id.AsSpan().ContainsAnyExcept(Allowed);

    private static readonly SearchValues<char> Allowed =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:");
}
