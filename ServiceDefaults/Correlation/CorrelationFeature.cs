using System.Collections;

namespace Shop.ServiceDefaults.Correlation;

/// <summary>
/// A request's correlation id, kept on the request (where middleware outside its flow, the exception handler and the
/// status-code pages, still finds it) and given to the logger as the request's scope: one small object per request.
/// </summary>
public sealed class CorrelationFeature(string id) : IReadOnlyList<KeyValuePair<string, object>>
{
    public string Id { get; } = id;

    public int Count => 1;

    public KeyValuePair<string, object> this[int index] =>
        index == 0 ? new(CorrelationContext.LogScopeKey, Id) : throw new ArgumentOutOfRangeException(nameof(index));

    public IEnumerator<KeyValuePair<string, object>> GetEnumerator()
    {
        yield return this[0];
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public override string ToString() => $"{CorrelationContext.LogScopeKey}:{Id}";
}
