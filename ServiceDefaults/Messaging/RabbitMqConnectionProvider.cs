using Microsoft.Extensions.Logging;
using RabbitMQ.Client;

namespace Shop.ServiceDefaults.Messaging;

/// <summary>
/// One AMQP connection per process, opened on first use and kept by the client's automatic recovery
/// (channels and consumers come back after a broker restart).
/// </summary>
public sealed class RabbitMqConnectionProvider(string connectionString, string clientName, ILogger<RabbitMqConnectionProvider> logger) : IAsyncDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private IConnection? _connection;

    public bool IsOpen => _connection?.IsOpen == true;

    public async Task<IConnection> GetConnectionAsync(CancellationToken cancellationToken)
    {
        if (_connection is { } existing)
        {
            return existing;
        }

        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_connection is null)
            {
                var factory = new ConnectionFactory
                {
                    Uri = new Uri(connectionString),
                    ClientProvidedName = clientName,
                    AutomaticRecoveryEnabled = true,
                    TopologyRecoveryEnabled = true,
                    NetworkRecoveryInterval = TimeSpan.FromSeconds(2),
                    RequestedHeartbeat = TimeSpan.FromSeconds(20),
                    RequestedConnectionTimeout = TimeSpan.FromSeconds(5),
                };
                _connection = await factory.CreateConnectionAsync(cancellationToken);
                logger.LogInformation("Connected to RabbitMQ at {Host}:{Port}", factory.HostName, factory.Port);
            }

            return _connection;
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is { } connection)
        {
            try
            {
                await connection.CloseAsync(TimeSpan.FromSeconds(2));
            }
            catch (Exception ex)
            {
                logger.LogDebug(ex, "Closing the RabbitMQ connection failed");
            }

            connection.Dispose();
        }

        _gate.Dispose();
    }
}
