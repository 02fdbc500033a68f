namespace Shop.Gateway.Forwarding;

/// <summary>
/// The client's request body as the Gateway streams it to a replica, remembering whether it was read to its end and
/// why a read failed: a failure while sending the request is then put on the side that caused it.
/// </summary>
internal sealed class ClientBody(Stream inner) : Stream
{
    /// <summary>The body was read to its end.</summary>
    public bool Completed { get; private set; }

    /// <summary>Why reading the client's body failed (cut off, too large, too slow); null while it has not.</summary>
    public Exception? Failure { get; private set; }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            var read = await inner.ReadAsync(buffer, cancellationToken);
            if (read == 0 && buffer.Length > 0)
            {
                Completed = true;
            }

            return read;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // A read that HttpClient cancelled (the answer's time ran out, the replica failed) is not the client's fault.
            Failure = ex;
            throw;
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    // Kestrel refuses synchronous reads; HttpClient reads asynchronously.
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
