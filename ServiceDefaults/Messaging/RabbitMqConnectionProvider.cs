using Microsoft.Extensions.Logging;
using RabbitMQ.Client;

namespace Shop.ServiceDefaults.Messaging;

/// <summary>What a connection is for: a process keeps one of each.</summary>
public enum RabbitMqConnectionRole
{
    /// <summary>Publishing (the outbox relay, moves to retry and dead-letter queues, the dead-letter admin API).</summary>
    Publishing,

    /// <summary>Consuming: deliveries and their acks.</summary>
    Consuming,
}

/// <summary>
/// Two AMQP connections per process, one to publish on and one to consume on, each opened on first use and kept by the
/// client's automatic recovery (channels and consumers come back after a broker restart). Apart, because the broker
/// blocks a connection that publishes during a memory or disk alarm: on a shared one, the consumers' acks would stop
/// with it, and the queues could not drain for the alarm to clear.
/// </summary>
public sealed class RabbitMqConnectionProvider(string connectionString, string clientName, ILogger<RabbitMqConnectionProvider> logger) : IAsyncDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly IConnection?[] _connections = new IConnection?[2];

    public bool IsOpen => _connections[(int)RabbitMqConnectionRole.Publishing]?.IsOpen == true;

    public Task<IConnection> GetConnectionAsync(CancellationToken cancellationToken) =>
        GetConnectionAsync(RabbitMqConnectionRole.Publishing, cancellationToken);

    public async Task<IConnection> GetConnectionAsync(RabbitMqConnectionRole role, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _connections[(int)role]) is { } existing)
        {
            return existing;
        }

        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_connections[(int)role] is null)
            {
                var factory = new ConnectionFactory
                {
                    Uri = new Uri(connectionString),
                    ClientProvidedName = role == RabbitMqConnectionRole.Publishing ? clientName : $"{clientName} (consuming)",
                    AutomaticRecoveryEnabled = true,
                    TopologyRecoveryEnabled = true,
                    NetworkRecoveryInterval = TimeSpan.FromSeconds(2),
                    RequestedHeartbeat = TimeSpan.FromSeconds(20),
                    RequestedConnectionTimeout = TimeSpan.FromSeconds(5),
                };
                Volatile.Write(ref _connections[(int)role], await factory.CreateConnectionAsync(cancellationToken));
                logger.LogInformation("Connected to RabbitMQ at {Host}:{Port} for {Role}", factory.HostName, factory.Port, role);
            }

            return _connections[(int)role]!;
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var connection in _connections)
        {
            if (connection is null)
            {
                continue;
            }

            try
            {
                await connection.CloseAsync(TimeSpan.FromSeconds(2));
            }
            catch (Exception ex)
            {
                logger.LogDebug(ex, "Closing a RabbitMQ connection failed");
            }

            connection.Dispose();
        }

        _gate.Dispose();
    }
}
