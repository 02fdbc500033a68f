using System.Buffers.Text;
using System.Net.Sockets;
using System.Text;

namespace Shop.ServiceDefaults.Caching;

/// <summary>
/// One Redis connection in subscriber mode (RESP2), read by one loop. Written for <see cref="LeasedSubscription"/>
/// because it needs what StackExchange.Redis 1.x does not promise: that messages and PING answers reach the code in the
/// order Redis sent them, and that a lost connection is noticed by the code that relies on it.
/// </summary>
public sealed class RespSubscription : IAsyncDisposable
{
    private readonly TcpClient _client;
    private readonly NetworkStream _stream;
    private readonly byte[] _buffer = new byte[16 * 1024];
    private int _start;
    private int _end;

    private RespSubscription(TcpClient client)
    {
        _client = client;
        _stream = client.GetStream();
    }

    /// <summary>A message on a channel, or the answer to a PING (<see cref="Channel"/> is null then).</summary>
    public readonly record struct Push(string? Channel, string Payload);

    public static async Task<RespSubscription> ConnectAsync(string host, int port, string? password, IReadOnlyList<string> channels,
        CancellationToken cancellationToken)
    {
        var client = new TcpClient { NoDelay = true };
        try
        {
            await client.ConnectAsync(host, port, cancellationToken);
        }
        catch
        {
            client.Dispose();
            throw;
        }

        var subscription = new RespSubscription(client);
        try
        {
            if (!string.IsNullOrEmpty(password))
            {
                await subscription.SendAsync(["AUTH", password], cancellationToken);
                if (await subscription.ReadValueAsync(cancellationToken) is not "OK")
                {
                    throw new IOException("Redis refused the password.");
                }
            }

            await subscription.SendAsync(["SUBSCRIBE", .. channels], cancellationToken);
            for (var i = 0; i < channels.Count; i++)
            {
                if (await subscription.ReadValueAsync(cancellationToken) is not object[] { Length: 3 } confirmed || confirmed[0] is not "subscribe")
                {
                    throw new IOException("Redis did not confirm the subscription.");
                }
            }

            return subscription;
        }
        catch
        {
            await subscription.DisposeAsync();
            throw;
        }
    }

    /// <summary>Redis answers after every message published before it reached the server, in the same stream. Not safe to call concurrently.</summary>
    public Task PingAsync(string payload, CancellationToken cancellationToken) => SendAsync(["PING", payload], cancellationToken);

    public async Task<Push> ReadAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            switch (await ReadValueAsync(cancellationToken))
            {
                case object[] { Length: 3 } message when message[0] is "message" && message[1] is string channel && message[2] is string payload:
                    return new Push(channel, payload);
                case object[] { Length: 2 } pong when pong[0] is "pong" && pong[1] is string payload:
                    return new Push(null, payload);
                case RespError error:
                    throw new IOException($"Redis: {error.Message}");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _client.Dispose();
    }

    private async Task SendAsync(IReadOnlyList<string> parts, CancellationToken cancellationToken)
    {
        var command = new StringBuilder().Append('*').Append(parts.Count).Append("\r\n");
        foreach (var part in parts)
        {
            command.Append('$').Append(Encoding.UTF8.GetByteCount(part)).Append("\r\n").Append(part).Append("\r\n");
        }

        // One writer: the connect sequence, then the caller's PING loop.
        await _stream.WriteAsync(Encoding.UTF8.GetBytes(command.ToString()), cancellationToken);
    }

    private sealed record RespError(string Message);

    /// <summary>One RESP2 value: a string (simple or bulk), a long, null, an error or an array of those.</summary>
    private async Task<object?> ReadValueAsync(CancellationToken cancellationToken)
    {
        var line = await ReadLineAsync(cancellationToken);
        if (line.Length == 0)
        {
            throw new IOException("Empty RESP line.");
        }

        var body = line.AsSpan(1);
        switch ((char)line[0])
        {
            case '+':
                return Encoding.UTF8.GetString(body);
            case '-':
                return new RespError(Encoding.UTF8.GetString(body));
            case ':':
                return ParseLength(body);
            case '$':
                var length = ParseLength(body);
                if (length < 0)
                {
                    return null;
                }

                var bytes = await ReadExactlyAsync(length + 2, cancellationToken);
                return Encoding.UTF8.GetString(bytes, 0, (int)length);
            case '*':
                var count = ParseLength(body);
                if (count < 0)
                {
                    return null;
                }

                var items = new object?[count];
                for (var i = 0; i < count; i++)
                {
                    items[i] = await ReadValueAsync(cancellationToken);
                }

                return items;
            default:
                throw new IOException($"Unexpected RESP type '{(char)line[0]}'.");
        }
    }

    private static long ParseLength(ReadOnlySpan<byte> digits) =>
        Utf8Parser.TryParse(digits, out long value, out var consumed) && consumed == digits.Length
            ? value
            : throw new IOException("Malformed RESP length.");

    private async Task<byte[]> ReadLineAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var newline = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n"u8);
            if (newline >= 0)
            {
                var line = _buffer.AsSpan(_start, newline).ToArray();
                _start += newline + 2;
                return line;
            }

            await FillAsync(cancellationToken);
        }
    }

    private async Task<byte[]> ReadExactlyAsync(long count, CancellationToken cancellationToken)
    {
        if (count > 64 * 1024 * 1024)
        {
            throw new IOException("RESP value too large.");
        }

        var result = new byte[count];
        var copied = 0;
        while (copied < count)
        {
            if (_start == _end)
            {
                await FillAsync(cancellationToken);
            }

            var take = (int)Math.Min(count - copied, _end - _start);
            _buffer.AsSpan(_start, take).CopyTo(result.AsSpan(copied));
            _start += take;
            copied += take;
        }

        return result;
    }

    private async Task FillAsync(CancellationToken cancellationToken)
    {
        if (_start > 0)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            throw new IOException("RESP line too long.");
        }

        var read = await _stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
        if (read == 0)
        {
            throw new IOException("Redis closed the connection.");
        }

        _end += read;
    }
}
