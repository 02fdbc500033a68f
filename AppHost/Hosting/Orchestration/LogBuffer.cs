using System.Threading.Channels;

namespace Shop.Hosting.Orchestration;

public sealed record LogLine(DateTimeOffset Timestamp, int Replica, bool IsError, string Text);

/// <summary>The recent console output of a resource (bounded), with live subscribers for the dashboard.</summary>
public sealed class LogBuffer(int capacity = 5000)
{
    private readonly Queue<LogLine> _lines = new();
    private readonly List<Channel<LogLine>> _subscribers = [];

    public void Add(LogLine line)
    {
        lock (_lines)
        {
            _lines.Enqueue(line);
            while (_lines.Count > capacity)
            {
                _lines.Dequeue();
            }

            foreach (var subscriber in _subscribers)
            {
                subscriber.Writer.TryWrite(line);
            }
        }
    }

    public IReadOnlyList<LogLine> Tail(int count, int? replica = null)
    {
        lock (_lines)
        {
            var lines = replica is { } r ? _lines.Where(l => l.Replica == r) : _lines;
            return lines.TakeLast(count).ToList();
        }
    }

    /// <summary>Live lines from now on; slow readers lose the oldest lines rather than slowing the AppHost.</summary>
    public async IAsyncEnumerable<LogLine> SubscribeAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var channel = Channel.CreateBounded<LogLine>(new BoundedChannelOptions(1000) { FullMode = BoundedChannelFullMode.DropOldest });
        lock (_lines)
        {
            _subscribers.Add(channel);
        }

        try
        {
            await foreach (var line in channel.Reader.ReadAllAsync(cancellationToken))
            {
                yield return line;
            }
        }
        finally
        {
            lock (_lines)
            {
                _subscribers.Remove(channel);
            }
        }
    }
}
