using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Shop.Hosting.ApplicationModel;

namespace Shop.Hosting.Orchestration;

/// <summary>redis-server bound to loopback only, with a password, no persistence (the run's data is thrown away).</summary>
internal sealed class RedisLauncher(RedisResource resource, RunDirectory run) : IResourceLauncher
{
    public TimeSpan StopGrace => TimeSpan.FromSeconds(5);

    public Task<ProcessSpec> PrepareAsync(ReplicaRuntime replica, CancellationToken cancellationToken)
    {
        var folder = run.Combine(resource.Name);
        // The password is in a file of the run's private folder: on the command line every user would see it with ps.
        var config = Path.Combine(folder, "redis.conf");
        File.WriteAllText(config, $"requirepass {resource.Password}\n");
        return Task.FromResult(new ProcessSpec("redis-server",
        [
            config,
            "--port", resource.Port.ToString(CultureInfo.InvariantCulture),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--dir", folder,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", "",
        ], folder, new Dictionary<string, string?>()));
    }

    /// <summary>AUTH then PING over RESP; healthy only on +OK and +PONG.</summary>
    public async Task<bool> ProbeAsync(ReplicaRuntime replica, CancellationToken cancellationToken)
    {
        try
        {
            using var client = new TcpClient();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(2));
            await client.ConnectAsync("127.0.0.1", resource.Port, timeout.Token);
            var stream = client.GetStream();
            var command = $"*2\r\n$4\r\nAUTH\r\n${Encoding.UTF8.GetByteCount(resource.Password)}\r\n{resource.Password}\r\n*1\r\n$4\r\nPING\r\n";
            await stream.WriteAsync(Encoding.UTF8.GetBytes(command), timeout.Token);
            var buffer = new byte[64];
            var received = new StringBuilder();
            while (!received.ToString().Contains("+PONG", StringComparison.Ordinal) && !received.ToString().Contains('-', StringComparison.Ordinal))
            {
                var read = await stream.ReadAsync(buffer, timeout.Token);
                if (read == 0)
                {
                    break;
                }

                received.Append(Encoding.UTF8.GetString(buffer, 0, read));
            }

            return received.ToString().StartsWith("+OK\r\n+PONG", StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is SocketException or IOException || ex is OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }
}
