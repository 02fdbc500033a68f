namespace Shop.Hosting.Dashboard.Otlp;

public sealed record TraceSummary(
    string TraceId,
    string RootName,
    IReadOnlyList<string> Services,
    int SpanCount,
    DateTimeOffset Start,
    double DurationMs,
    bool HasError);

/// <summary>
/// Thread-safe, bounded in-memory store of received spans grouped by trace. When it holds too many traces or spans, the
/// trace that was first seen earliest is evicted; a trace keeps at most <c>maxSpansPerTrace</c> spans (one long-lived
/// root, or any local client posting spans of one trace id, would otherwise grow it without bound) and the rest of its
/// spans are dropped.
/// </summary>
public sealed class TraceStore
{
    private readonly int _maxTraces;
    private readonly int _maxSpans;
    private readonly int _maxSpansPerTrace;
    private readonly Lock _gate = new();
    private int _spanCount;

    // Spans are keyed by span id so that a batch re-sent by an exporter retry replaces rather than duplicates.
    private readonly Dictionary<string, Dictionary<string, SpanRecord>> _traces = new(StringComparer.OrdinalIgnoreCase);
    private readonly Queue<string> _firstSeenOrder = new();

    public TraceStore(int maxTraces = 2000, int maxSpans = 100_000, int maxSpansPerTrace = 1000)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxTraces);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxSpansPerTrace);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSpans, maxSpansPerTrace);
        (_maxTraces, _maxSpans, _maxSpansPerTrace) = (maxTraces, maxSpans, maxSpansPerTrace);
    }

    /// <summary>Spans not kept because their trace already held as many as a trace may.</summary>
    public long DroppedSpans { get; private set; }

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _traces.Count;
            }
        }
    }

    public void Add(IEnumerable<SpanRecord> spans)
    {
        ArgumentNullException.ThrowIfNull(spans);

        // Materialise outside the lock so a lazy sequence cannot hold it.
        var batch = spans.ToArray();
        lock (_gate)
        {
            foreach (var span in batch)
            {
                if (!_traces.TryGetValue(span.TraceId, out var trace))
                {
                    if (_traces.Count >= _maxTraces)
                    {
                        EvictOldest();
                    }

                    trace = new Dictionary<string, SpanRecord>(StringComparer.OrdinalIgnoreCase);
                    _traces.Add(span.TraceId, trace);
                    _firstSeenOrder.Enqueue(span.TraceId);
                }

                if (trace.ContainsKey(span.SpanId))
                {
                    trace[span.SpanId] = span;
                    continue;
                }

                if (trace.Count >= _maxSpansPerTrace)
                {
                    DroppedSpans++;
                    continue;
                }

                trace.Add(span.SpanId, span);
                _spanCount++;
                while (_spanCount > _maxSpans && _firstSeenOrder.Peek() != span.TraceId)
                {
                    EvictOldest();
                }
            }
        }
    }

    private void EvictOldest()
    {
        var oldest = _firstSeenOrder.Dequeue();
        _spanCount -= _traces[oldest].Count;
        _traces.Remove(oldest);
    }

    public IReadOnlyList<SpanRecord>? GetTrace(string traceId)
    {
        ArgumentNullException.ThrowIfNull(traceId);
        lock (_gate)
        {
            return _traces.TryGetValue(traceId, out var trace)
                ? trace.Values.OrderBy(s => s.Start).ToArray()
                : null;
        }
    }

    public IReadOnlyList<TraceSummary> ListTraces(int limit, string? service = null)
    {
        if (limit <= 0)
        {
            return [];
        }

        lock (_gate)
        {
            return _traces
                .Where(t => service is null || t.Value.Values.Any(s => string.Equals(s.ServiceName, service, StringComparison.OrdinalIgnoreCase)))
                .Select(t => Summarize(t.Key, t.Value))
                .OrderByDescending(s => s.Start)
                .Take(limit)
                .ToArray();
        }
    }

    private static TraceSummary Summarize(string traceId, Dictionary<string, SpanRecord> trace)
    {
        var spans = trace.Values;
        var services = new SortedSet<string>(StringComparer.Ordinal);
        SpanRecord? root = null;
        SpanRecord? earliest = null;
        var end = DateTimeOffset.MinValue;
        var hasError = false;

        foreach (var span in spans)
        {
            if (earliest is null || span.Start < earliest.Start)
            {
                earliest = span;
            }

            var parentIsAbsent = span.ParentSpanId is null || !trace.ContainsKey(span.ParentSpanId);
            if (parentIsAbsent && (root is null || span.Start < root.Start))
            {
                root = span;
            }

            if (span.End > end)
            {
                end = span.End;
            }

            hasError |= span.Status == SpanStatusCode.Error;
            services.Add(span.ServiceName);
        }

        // A trace always holds at least one span; a parent cycle leaves no root, hence the fallback.
        var first = earliest!;
        root ??= first;
        var durationMs = Math.Max(0, (end - first.Start).TotalMilliseconds);
        return new TraceSummary(traceId, root.Name, services.ToArray(), spans.Count, first.Start, durationMs, hasError);
    }
}
