using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Shop.Gateway.Forwarding;
using Shop.ServiceDefaults.Discovery;

namespace Shop.Tests.Unit;

/// <summary>
/// The Gateway's forwarding against replicas played by sockets on loopback, each failing in its own way: which side a
/// failure is put on decides whether a replica is ejected (here after one failure) and what the client gets.
/// </summary>
public sealed class ForwarderTests : IAsyncDisposable
{
    private readonly List<IAsyncDisposable> _replicas = [];

    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    public async ValueTask DisposeAsync()
    {
        foreach (var replica in _replicas)
        {
            await replica.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_replica_that_does_not_accept_the_connection_in_time_is_passed_over_for_the_next()
    {
        using var silent = Unaccepting();
        var answering = Replica(async (stream, _, _) => await WriteAsync(stream, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        var (forwarder, pools) = Create(timeoutSeconds: 30, silent.Address, answering);
        var context = Context();

        await forwarder.ForwardAsync(context, "inventory").WaitAsync(TimeSpan.FromSeconds(20), Cancellation);

        Assert.Equal(StatusCodes.Status200OK, context.Response.StatusCode);
        Assert.Equal("ok", Body(context));
        Assert.True(pools.All("inventory")[0].IsEjected(DateTimeOffset.UtcNow), "the replica that did not accept was not counted");
        Assert.False(pools.All("inventory")[1].IsEjected(DateTimeOffset.UtcNow));
    }

    [Fact]
    public async Task An_answer_that_breaks_off_after_its_headers_is_the_replicas_failure_and_the_client_connection_is_broken()
    {
        var breaking = Replica(async (stream, _, _) => await WriteAsync(stream, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"));
        var (forwarder, pools) = Create(timeoutSeconds: 30, breaking);
        var context = Context();
        var lifetime = new AbortRecorder();
        context.Features.Set<IHttpRequestLifetimeFeature>(lifetime);
        context.Features.Set<IHttpResponseFeature>(new StartedOnceWritten(context.Response.Body));

        await forwarder.ForwardAsync(context, "inventory").WaitAsync(TimeSpan.FromSeconds(20), Cancellation);

        Assert.True(lifetime.Aborted, "a cut-off answer was passed on as if it were whole");
        Assert.True(pools.All("inventory")[0].IsEjected(DateTimeOffset.UtcNow));
    }

    [Fact]
    public async Task An_answer_that_breaks_off_inside_the_compression_of_the_response_breaks_the_client_connection_too()
    {
        var breaking = Replica(async (stream, _, _) => await WriteAsync(stream, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"));
        var (forwarder, _) = Create(timeoutSeconds: 30, breaking);
        var context = Context();
        var lifetime = new AbortRecorder();
        context.Features.Set<IHttpRequestLifetimeFeature>(lifetime);
        // As the response compression's stream: it holds the bytes, and the response has not started.
        context.Response.Body = new Compressing();

        await forwarder.ForwardAsync(context, "inventory").WaitAsync(TimeSpan.FromSeconds(20), Cancellation);

        // Before, the response was cleared (its Content-Encoding with it) and a 502 written after the compressed fragment.
        Assert.True(lifetime.Aborted, "a 502 followed part of the answer");
    }

    [Fact]
    public async Task An_answer_that_stalls_after_its_headers_is_a_504_before_anything_was_sent_and_the_replicas_failure_with_the_gateways_own_headers()
    {
        var stalling = Replica(async (stream, _, stop) =>
        {
            await WriteAsync(stream, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-From-Replica: 1\r\nX-Frame-Options: SAMEORIGIN\r\n\r\n");
            await Task.Delay(Timeout.Infinite, stop);
        });
        var (forwarder, pools) = Create(timeoutSeconds: 1, stalling);
        var context = Context();
        // As the edge and the rate limiter set them before forwarding.
        context.Response.Headers.XFrameOptions = "DENY";
        context.Response.Headers["RateLimit"] = "\"user\";r=599;t=60";

        await forwarder.ForwardAsync(context, "inventory").WaitAsync(TimeSpan.FromSeconds(20), Cancellation);

        Assert.Equal(StatusCodes.Status504GatewayTimeout, context.Response.StatusCode);
        Assert.Contains("did not answer in time", Body(context), StringComparison.Ordinal);
        Assert.True(pools.All("inventory")[0].IsEjected(DateTimeOffset.UtcNow));
        // The Gateway's own headers stay on its answer, as they were; the replica's are gone with its answer.
        Assert.Equal("DENY", context.Response.Headers.XFrameOptions.ToString());
        Assert.Equal("\"user\";r=599;t=60", context.Response.Headers["RateLimit"].ToString());
        Assert.False(context.Response.Headers.ContainsKey("X-From-Replica"));
    }

    [Fact]
    public async Task A_client_that_sends_its_body_too_slowly_gets_408_and_the_replica_is_not_blamed()
    {
        var waiting = Replica(async (_, _, stop) => await Task.Delay(Timeout.Infinite, stop));
        var (forwarder, pools) = Create(timeoutSeconds: 1, waiting);
        var context = Context("POST", new StallingBody());
        context.Request.ContentLength = 10;

        await forwarder.ForwardAsync(context, "inventory").WaitAsync(TimeSpan.FromSeconds(20), Cancellation);

        Assert.Equal(StatusCodes.Status408RequestTimeout, context.Response.StatusCode);
        Assert.False(pools.All("inventory")[0].IsEjected(DateTimeOffset.UtcNow), "a slow client took a replica out");
    }

    [Fact]
    public async Task A_client_body_that_cannot_be_read_is_a_400_and_the_replica_is_not_blamed()
    {
        var reading = Replica(async (_, _, stop) => await Task.Delay(Timeout.Infinite, stop));
        var (forwarder, pools) = Create(timeoutSeconds: 30, reading);
        var context = Context("POST", new FailingBody());
        context.Request.ContentLength = 10;

        var refused = await Assert.ThrowsAsync<BadHttpRequestException>(() => forwarder.ForwardAsync(context, "inventory"));

        Assert.Equal(StatusCodes.Status400BadRequest, refused.StatusCode);
        Assert.False(pools.All("inventory")[0].IsEjected(DateTimeOffset.UtcNow), "a broken upload took a replica out");
    }

    [Fact]
    public async Task Headers_named_in_Connection_and_Expect_stay_on_their_hop_both_ways()
    {
        var (replica, received) = RecordingReplica("HTTP/1.1 200 OK\r\nConnection: X-Replica-Only\r\nX-Replica-Only: 1\r\nX-Kept: 1\r\nContent-Length: 0\r\n\r\n");
        var (forwarder, _) = Create(timeoutSeconds: 30, replica);
        var context = Context();
        context.Request.Headers.Connection = "keep-alive, X-Client-Only";
        context.Request.Headers["X-Client-Only"] = "1";
        context.Request.Headers["X-Other"] = "1";
        context.Request.Headers.Expect = "100-continue";

        await forwarder.ForwardAsync(context, "inventory").WaitAsync(TimeSpan.FromSeconds(20), Cancellation);

        var head = await received.WaitAsync(Cancellation);
        Assert.DoesNotContain("X-Client-Only", head, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Expect", head, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("X-Other: 1", head, StringComparison.OrdinalIgnoreCase);
        Assert.False(context.Response.Headers.ContainsKey("X-Replica-Only"));
        Assert.Equal("1", context.Response.Headers["X-Kept"]);
    }

    [Fact]
    public async Task A_header_value_that_is_not_ascii_goes_to_the_replica_as_it_came_and_takes_no_replica_out()
    {
        var (replica, received) = RecordingReplica("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        var (forwarder, pools) = Create(timeoutSeconds: 30, replica);
        var context = Context();
        context.Request.Headers["X-Note"] = "café";

        await forwarder.ForwardAsync(context, "inventory").WaitAsync(TimeSpan.FromSeconds(20), Cancellation);

        // Before, HttpClient refused to send the header, and the replica was blamed: a 502, and a step towards ejection.
        Assert.Equal(StatusCodes.Status200OK, context.Response.StatusCode);
        Assert.Contains("X-Note: caf\u00c3\u00a9", await received.WaitAsync(Cancellation), StringComparison.Ordinal);
        Assert.False(pools.All("inventory")[0].IsEjected(DateTimeOffset.UtcNow));
    }

    [Fact]
    public async Task The_replica_reads_the_path_the_gateway_routed_so_an_escaped_dot_segment_cannot_leave_the_prefix()
    {
        var (replica, received) = RecordingReplica("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        var (forwarder, _) = Create(timeoutSeconds: 30, replica);
        var context = Context();
        // What Kestrel routes for /v1/products/%252e%252e/%252e%252e/health: decoded once, so the text "%2e%2e".
        context.Request.Path = new PathString("/v1/products/%2e%2e/%2e%2e/health");

        await forwarder.ForwardAsync(context, "inventory").WaitAsync(TimeSpan.FromSeconds(20), Cancellation);

        // Before, it went out as /v1/products/%2e%2e/%2e%2e/health, which the replica decoded to /health.
        var requestLine = (await received.WaitAsync(Cancellation)).Split("\r\n")[0];
        Assert.Equal("GET /v1/products/%252e%252e/%252e%252e/health HTTP/1.1", requestLine);
    }

    [Fact]
    public async Task Answers_that_break_off_after_their_headers_add_up_to_the_replicas_ejection()
    {
        var breaking = Replica(async (stream, _, _) => await WriteAsync(stream, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"), connections: 2);
        var (forwarder, pools) = Create(timeoutSeconds: 30, failuresToEject: 2, breaking);

        for (var attempt = 0; attempt < 2; attempt++)
        {
            var context = Context();
            context.Features.Set<IHttpRequestLifetimeFeature>(new AbortRecorder());
            context.Features.Set<IHttpResponseFeature>(new StartedOnceWritten(context.Response.Body));
            await forwarder.ForwardAsync(context, "inventory").WaitAsync(TimeSpan.FromSeconds(20), Cancellation);
        }

        // Before, the headers of each answer counted as a success that reset the count, so it never reached two.
        Assert.True(pools.All("inventory")[0].IsEjected(DateTimeOffset.UtcNow), "two broken answers in a row did not add up");
    }

    [Fact]
    public async Task A_client_that_takes_the_answer_slowly_does_not_use_up_the_replicas_time_to_send_it()
    {
        var replica = Replica(async (stream, _, stop) =>
        {
            await WriteAsync(stream, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab");
            await Task.Delay(200, stop);
            await WriteAsync(stream, "cd");
        });
        var (forwarder, pools) = Create(timeoutSeconds: 1, replica);
        var context = Context();
        var slow = new SlowClient();
        context.Response.Body = slow;

        await forwarder.ForwardAsync(context, "inventory").WaitAsync(TimeSpan.FromSeconds(20), Cancellation);

        // Each write to the client takes longer than the replica's read timeout. Before, the timer ran through the first
        // write, and the second read failed at once, blamed on the replica.
        Assert.Equal("abcd", Encoding.ASCII.GetString(slow.ToArray()));
        Assert.False(pools.All("inventory")[0].IsEjected(DateTimeOffset.UtcNow), "a slow client took a replica out");
    }

    private (Forwarder Forwarder, DestinationPools Pools) Create(int timeoutSeconds, params Uri[] replicas) =>
        Create(timeoutSeconds, failuresToEject: 1, replicas);

    private (Forwarder Forwarder, DestinationPools Pools) Create(int timeoutSeconds, int failuresToEject, params Uri[] replicas)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(
            replicas.Select((address, i) => KeyValuePair.Create($"services:inventory:http:{i}", (string?)address.ToString()))).Build();
        var pools = new DestinationPools(new ServiceEndpointResolver(configuration));
        var options = Options.Create(new ForwardingOptions { FailuresToEject = failuresToEject, TimeoutSeconds = timeoutSeconds });
        var prober = new DestinationProber(pools, TimeProvider.System, NullLogger<DestinationProber>.Instance);
        return (new Forwarder(pools, prober, options, TimeProvider.System, NullLogger<Forwarder>.Instance), pools);
    }

    private static DefaultHttpContext Context(string method = "GET", Stream? body = null)
    {
        var context = new DefaultHttpContext
        {
            RequestServices = new ServiceCollection().AddLogging().AddProblemDetails().BuildServiceProvider(),
        };
        context.Request.Method = method;
        context.Request.Scheme = "http";
        context.Request.Host = new HostString("127.0.0.1");
        context.Request.Path = "/v1/products/1";
        context.Request.Body = body ?? Stream.Null;
        context.Response.Body = new MemoryStream();
        return context;
    }

    private static string Body(HttpContext context) => Encoding.UTF8.GetString(((MemoryStream)context.Response.Body).ToArray());

    private static async Task WriteAsync(Stream stream, string text) => await stream.WriteAsync(Encoding.ASCII.GetBytes(text), Cancellation);

    /// <summary>A replica that answers one request with <paramref name="answer"/>; <c>Head</c> is the head of the request it got.</summary>
    private (Uri Address, Task<string> Head) RecordingReplica(string answer)
    {
        var received = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var address = Replica(async (stream, head, _) =>
        {
            received.SetResult(head);
            await WriteAsync(stream, answer);
        });
        return (address, received.Task);
    }

    /// <summary>A replica on loopback that reads a request's head and then does what it is told, on each of its connections.</summary>
    private Uri Replica(Func<NetworkStream, string, CancellationToken, Task> answer, int connections = 1)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var stop = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        var serving = Task.Run(async () =>
        {
            for (var connection = 0; connection < connections; connection++)
            {
                using var client = await listener.AcceptTcpClientAsync(stop.Token);
                await using var stream = client.GetStream();
                var head = new StringBuilder();
                var buffer = new byte[1];
                while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal) && await stream.ReadAsync(buffer, stop.Token) == 1)
                {
                    head.Append((char)buffer[0]);
                }

                await answer(stream, head.ToString(), stop.Token);
            }
        }, stop.Token);
        _replicas.Add(new Stopper(listener, stop, serving));
        return new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/");
    }

    /// <summary>
    /// A listening socket whose accept queue is full: the kernel leaves further connection attempts unanswered, as a
    /// host that is down or cut off does, until the connect timeout.
    /// </summary>
    private static Unanswered Unaccepting()
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(0);
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        filler.Connect(IPAddress.Loopback, port);
        return new Unanswered(listener, filler, new Uri($"http://127.0.0.1:{port}/"));
    }

    private sealed record Unanswered(Socket Listener, Socket Filler, Uri Address) : IDisposable
    {
        public void Dispose()
        {
            Filler.Dispose();
            Listener.Dispose();
        }
    }

    private sealed class Stopper(TcpListener listener, CancellationTokenSource stop, Task serving) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await stop.CancelAsync();
            listener.Stop();
            try
            {
                await serving;
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
            {
                // The forwarder hung up first, or the test ended: the replica's part is over either way.
            }
            finally
            {
                stop.Dispose();
            }
        }
    }

    private sealed class AbortRecorder : IHttpRequestLifetimeFeature
    {
        public CancellationToken RequestAborted { get; set; }

        public bool Aborted { get; private set; }

        public void Abort() => Aborted = true;
    }

    /// <summary>As in Kestrel, the response has started once its body has been written to.</summary>
    private sealed class StartedOnceWritten(Stream body) : HttpResponseFeature
    {
        public override bool HasStarted => body.Length > 0;
    }

    /// <summary>A body that keeps what is written and cannot take it back, as a compressing stream.</summary>
    private sealed class Compressing : MemoryStream
    {
        public override bool CanSeek => false;
    }

    /// <summary>A client that takes each write of the answer in 1.5 s.</summary>
    private sealed class SlowClient : MemoryStream
    {
        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Task.Delay(1500, cancellationToken);
            await base.WriteAsync(buffer, cancellationToken);
        }
    }

    /// <summary>A request body whose bytes never come.</summary>
    private sealed class StallingBody : MemoryStream
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return 0;
        }
    }

    /// <summary>A request body cut off by the client.</summary>
    private sealed class FailingBody : MemoryStream
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromException<int>(new IOException("The client reset the connection."));
    }
}
