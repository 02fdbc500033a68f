namespace Shop.Hosting.Orchestration;

/// <summary>How one kind of process-backed resource is prepared, started and probed.</summary>
internal interface IResourceLauncher
{
    TimeSpan StopGrace { get; }

    /// <summary>One-time set-up (initdb, config files) on first start, then the command to run.</summary>
    Task<ProcessSpec> PrepareAsync(ReplicaRuntime replica, CancellationToken cancellationToken);

    /// <summary>A protocol-level readiness check (a query, PING, an AMQP connection, GET /health).</summary>
    Task<bool> ProbeAsync(ReplicaRuntime replica, CancellationToken cancellationToken);

    /// <summary>Stops helper processes the launcher owns (epmd), after the resource itself has stopped.</summary>
    Task StopAuxiliaryAsync() => Task.CompletedTask;
}
