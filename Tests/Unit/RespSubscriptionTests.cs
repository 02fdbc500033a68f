using System.Net;
using System.Net.Sockets;
using System.Text;
using Shop.ServiceDefaults.Caching;

namespace Shop.Tests.Unit;

/// <summary>The subscriber against a scripted server on loopback: what it sends, and how it reads what Redis would answer.</summary>
public sealed class RespSubscriptionTests
{
    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Messages_and_ping_answers_come_out_in_the_order_the_server_sent_them_however_the_bytes_are_split()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var server = Task.Run(async () =>
        {
            using var peer = await listener.AcceptTcpClientAsync(Cancellation);
            var stream = peer.GetStream();
            var auth = await ReadCommandAsync(stream);
            await WriteAsync(stream, "+OK\r\n");
            var subscribe = await ReadCommandAsync(stream);
            await WriteAsync(stream, "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");
            var ping = await ReadCommandAsync(stream);
            // A message, the PING's answer and another message, cut at awkward places.
            var stream3 = "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nfirst\r\n*2\r\n$4\r\npong\r\n$2\r\n42\r\n*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$6\r\nsecond\r\n";
            foreach (var piece in new[] { stream3[..3], stream3[3..20], stream3[20..41], stream3[41..] })
            {
                await WriteAsync(stream, piece);
                await Task.Delay(10, Cancellation);
            }

            return (auth, subscribe, ping);
        }, Cancellation);

        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        await using var subscription = await RespSubscription.ConnectAsync("127.0.0.1", port, "s3cret", ["ch"], Cancellation);
        await subscription.PingAsync("42", Cancellation);

        Assert.Equal(new RespSubscription.Push("ch", "first"), await subscription.ReadAsync(Cancellation));
        Assert.Equal(new RespSubscription.Push(null, "42"), await subscription.ReadAsync(Cancellation));
        Assert.Equal(new RespSubscription.Push("ch", "second"), await subscription.ReadAsync(Cancellation));
        var (auth, subscribe, ping) = await server;
        Assert.Equal(["AUTH", "s3cret"], auth);
        Assert.Equal(["SUBSCRIBE", "ch"], subscribe);
        Assert.Equal(["PING", "42"], ping);
    }

    [Fact]
    public async Task A_refused_password_and_a_closed_connection_are_errors_not_silence()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var refusing = Task.Run(async () =>
        {
            using var peer = await listener.AcceptTcpClientAsync(Cancellation);
            await ReadCommandAsync(peer.GetStream());
            await WriteAsync(peer.GetStream(), "-WRONGPASS invalid username-password pair\r\n");
        }, Cancellation);
        await Assert.ThrowsAsync<IOException>(() => RespSubscription.ConnectAsync("127.0.0.1", port, "wrong", ["ch"], Cancellation));
        await refusing;

        var closing = Task.Run(async () =>
        {
            using var peer = await listener.AcceptTcpClientAsync(Cancellation);
            await ReadCommandAsync(peer.GetStream());
            await WriteAsync(peer.GetStream(), "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");
        }, Cancellation);
        await using var subscription = await RespSubscription.ConnectAsync("127.0.0.1", port, null, ["ch"], Cancellation);
        await closing;
        await Assert.ThrowsAsync<IOException>(() => subscription.ReadAsync(Cancellation));
    }

    /// <summary>
    /// The subscription speaks plain RESP to one server. A connection string it cannot keep the lease's promise on turns the
    /// memory tier off at start, with one warning, instead of retrying for ever (TLS) or trusting a replica's PING (several
    /// servers, a sentinel).
    /// </summary>
    [Theory]
    [InlineData("localhost:6379,password=x", null)]
    [InlineData("127.0.0.1:6380,password=x,abortConnect=false,connectTimeout=500", null)]
    [InlineData("cache.example:6380,password=x,ssl=true", "TLS")]
    [InlineData("primary:6379,replica:6379,password=x", "2 servers")]
    [InlineData("sentinel:26379,serviceName=shop,password=x", "sentinel")]
    public void A_connection_string_the_subscription_cannot_keep_its_promise_on_is_named(string connectionString, string? reason)
    {
        var why = LeasedSubscription.Unusable(StackExchange.Redis.ConfigurationOptions.Parse(connectionString));

        if (reason is null)
        {
            Assert.Null(why);
        }
        else
        {
            Assert.Contains(reason, why, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task With_two_servers_named_the_subscription_never_connects_and_the_lease_is_never_held()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;

        using (var refused = new Probe($"127.0.0.1:{port},127.0.0.2:{port},password=x"))
        {
            await refused.StartAsync(Cancellation);
            await refused.ExecuteTask!.WaitAsync(TimeSpan.FromSeconds(5), Cancellation);
            await Task.Delay(200, Cancellation);
            Assert.False(listener.Pending());
            Assert.False(refused.Subscribed);
        }

        // The same server named alone is subscribed on: the test above can see a connection.
        using var usable = new Probe($"127.0.0.1:{port},password=x");
        await usable.StartAsync(Cancellation);
        using var peer = await listener.AcceptTcpClientAsync(Cancellation).AsTask().WaitAsync(TimeSpan.FromSeconds(5), Cancellation);
        Assert.Equal(["AUTH", "x"], await ReadCommandAsync(peer.GetStream()));
        await usable.StopAsync(Cancellation);
    }

    private sealed class Probe(string connectionString)
        : LeasedSubscription(connectionString, "test", TimeSpan.FromSeconds(1), TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance)
    {
        public bool Subscribed { get; private set; }

        protected override string What => "Test";

        protected override Task OnSubscribedAsync(CancellationToken cancellationToken)
        {
            Subscribed = true;
            return Task.CompletedTask;
        }

        protected override void OnMessage(string payload)
        {
        }

        protected override void OnConfirmed(long sentAt)
        {
        }

        protected override void OnLost()
        {
        }
    }

    private static Task WriteAsync(NetworkStream stream, string text) => stream.WriteAsync(Encoding.UTF8.GetBytes(text), Cancellation).AsTask();

    /// <summary>One RESP array of bulk strings, as clients send commands.</summary>
    private static async Task<string[]> ReadCommandAsync(NetworkStream stream)
    {
        var reader = new StreamReader(stream, Encoding.UTF8, leaveOpen: true, bufferSize: 1);
        var count = int.Parse((await reader.ReadLineAsync(Cancellation))![1..], System.Globalization.CultureInfo.InvariantCulture);
        var parts = new string[count];
        for (var i = 0; i < count; i++)
        {
            await reader.ReadLineAsync(Cancellation);
            parts[i] = (await reader.ReadLineAsync(Cancellation))!;
        }

        return parts;
    }
}
