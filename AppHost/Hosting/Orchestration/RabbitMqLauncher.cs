using System.Globalization;
using RabbitMQ.Client;
using Shop.Hosting.ApplicationModel;

namespace Shop.Hosting.Orchestration;

/// <summary>
/// rabbitmq-server from Debian's package, with every RABBITMQ_* location inside this run's folder, a node
/// name and distribution port of its own, and its own epmd on a private port (the shared default epmd
/// would outlive the run and couple two AppHosts).
/// </summary>
internal sealed class RabbitMqLauncher(RabbitMQServerResource resource, RunDirectory run) : IResourceLauncher
{
    private const string ServerScript = "/usr/lib/rabbitmq/bin/rabbitmq-server";
    private int _epmdPort;
    private ManagedProcess? _epmd;

    public TimeSpan StopGrace => TimeSpan.FromSeconds(15);

    public Task<ProcessSpec> PrepareAsync(ReplicaRuntime replica, CancellationToken cancellationToken)
    {
        if (!File.Exists(ServerScript))
        {
            throw new InvalidOperationException($"RabbitMQ is not installed ({ServerScript} is missing). Run the README's set-up command.");
        }

        var folder = run.Combine(resource.Name);
        var config = Path.Combine(folder, "rabbitmq.conf");
        File.WriteAllLines(config,
        [
            $"listeners.tcp.1 = 127.0.0.1:{resource.Port}",
            $"default_user = {RabbitMQServerResource.UserName}",
            $"default_pass = {resource.Password}",
            "default_vhost = /",
            "loopback_users = none",
            "log.console = true",
            "log.console.level = warning",
            "log.file = false",
        ]);
        var plugins = Path.Combine(folder, "enabled_plugins");
        File.WriteAllText(plugins, "[].\n");

        if (_epmd is null || _epmd.Exited.IsCompleted)
        {
            _epmd?.Dispose();
            _epmdPort = PortAllocator.GetFreePort();
            _epmd = ManagedProcess.Start(
                new ProcessSpec("epmd", ["-port", Port(_epmdPort), "-address", "127.0.0.1"], folder, new Dictionary<string, string?>()),
                run,
                (isError, text) => replica.Owner.Logs.Add(new LogLine(DateTimeOffset.UtcNow, replica.Index, isError, "[epmd] " + text)));
        }

        var environment = new Dictionary<string, string?>
        {
            ["HOME"] = folder,
            ["RABBITMQ_NODENAME"] = $"rabbit-{run.Id}@localhost",
            ["RABBITMQ_NODE_IP_ADDRESS"] = "127.0.0.1",
            ["RABBITMQ_NODE_PORT"] = Port(resource.Port),
            // Nothing outside the node uses it, so each start takes a port that is free now.
            ["RABBITMQ_DIST_PORT"] = Port(PortAllocator.GetFreePort()),
            ["RABBITMQ_MNESIA_BASE"] = Path.Combine(folder, "mnesia"),
            ["RABBITMQ_LOG_BASE"] = Path.Combine(folder, "log"),
            ["RABBITMQ_ENABLED_PLUGINS_FILE"] = plugins,
            ["RABBITMQ_PID_FILE"] = Path.Combine(folder, "rabbit.pid"),
            ["RABBITMQ_CONFIG_FILE"] = config,
            ["RABBITMQ_LOGS"] = "-",
            ["ERL_EPMD_PORT"] = Port(_epmdPort),
            ["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = "-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
        };
        return Task.FromResult(new ProcessSpec(ServerScript, [], folder, environment));
    }

    public async Task<bool> ProbeAsync(ReplicaRuntime replica, CancellationToken cancellationToken)
    {
        try
        {
            var factory = new ConnectionFactory
            {
                Uri = new Uri(resource.ConnectionString!),
                ClientProvidedName = "apphost-probe",
                RequestedConnectionTimeout = TimeSpan.FromSeconds(3),
                AutomaticRecoveryEnabled = false,
            };
            await using var connection = await factory.CreateConnectionAsync(cancellationToken);
            await connection.CloseAsync(cancellationToken);
            return true;
        }
        catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.BrokerUnreachableException or IOException or TimeoutException
            or RabbitMQ.Client.Exceptions.OperationInterruptedException or System.Net.Sockets.SocketException)
        {
            return false;
        }
    }

    public async Task StopAuxiliaryAsync()
    {
        if (_epmd is { } epmd)
        {
            await epmd.StopAsync(TimeSpan.FromSeconds(3));
            epmd.Dispose();
        }
    }

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);
}
