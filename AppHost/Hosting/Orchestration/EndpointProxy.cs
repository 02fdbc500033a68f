using System.Net;
using System.Net.Sockets;

namespace Shop.Hosting.Orchestration;

/// <summary>
/// A TCP proxy on a stable port in front of a resource's replicas (what DCP's proxy does for Aspire): each
/// new connection goes to the next ready replica; a replica that refuses the connection is skipped. When none is
/// ready, the proxy asks for the unready ones to be probed at once and waits briefly for one before it gives up.
/// </summary>
internal sealed class EndpointProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly Func<IReadOnlyList<Uri>> _targets;
    private readonly Func<CancellationToken, Task> _recheck;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _accepting;
    private int _next;

    public EndpointProxy(int port, Func<IReadOnlyList<Uri>> targets, Func<CancellationToken, Task> recheck)
    {
        _targets = targets;
        _recheck = recheck;
        _listener = new TcpListener(IPAddress.Loopback, port);
        _listener.Start(backlog: 512);
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptLoopAsync();
    }

    public int Port { get; }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _listener.Stop();
        await _accepting.ContinueWith(_ => { }, TaskScheduler.Default);
        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stopping.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            client.NoDelay = true;
            using var upstream = await ConnectUpstreamAsync();
            if (upstream is null)
            {
                return;
            }

            var toUpstream = PumpAsync(client, upstream);
            var toClient = PumpAsync(upstream, client);
            var first = await Task.WhenAny(toUpstream, toClient);
            if (!await first)
            {
                // One side failed: close both so the other pump ends too.
                client.Close();
                upstream.Close();
            }

            await Task.WhenAll(toUpstream, toClient);
        }
    }

    private async Task<TcpClient?> ConnectUpstreamAsync()
    {
        var targets = _targets();
        if (targets.Count == 0)
        {
            try
            {
                await _recheck(_stopping.Token);
            }
            catch (OperationCanceledException)
            {
                return null;
            }

            targets = _targets();
        }

        for (var attempt = 0; attempt < targets.Count; attempt++)
        {
            var target = targets[(int)((uint)Interlocked.Increment(ref _next) % (uint)targets.Count)];
            var upstream = new TcpClient { NoDelay = true };
            try
            {
                await upstream.ConnectAsync(target.Host, target.Port, _stopping.Token);
                return upstream;
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                upstream.Dispose();
            }
        }

        return null;
    }

    /// <returns>true when the source ended normally (its half of the connection is passed on as a shutdown).</returns>
    private async Task<bool> PumpAsync(TcpClient from, TcpClient to)
    {
        try
        {
            await from.GetStream().CopyToAsync(to.GetStream(), _stopping.Token);
            to.Client.Shutdown(SocketShutdown.Send);
            return true;
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            return false;
        }
    }
}
