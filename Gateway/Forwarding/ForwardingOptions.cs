using System.ComponentModel.DataAnnotations;

namespace Shop.Gateway.Forwarding;

public sealed class ForwardingOptions
{
    public const string Section = "Forwarding";

    /// <summary>
    /// Consecutive transport failures (connection errors, timeouts, broken answers) that eject a destination. A status
    /// code the destination answers, 5xx included, is not one: readiness is the active probe's to judge.
    /// </summary>
    [Range(1, 100)]
    public int FailuresToEject { get; set; } = 3;

    [Range(1, 300)]
    public int EjectSeconds { get; set; } = 10;

    [Range(1, 60)]
    public int HealthCheckIntervalSeconds { get; set; } = 5;

    [Range(1, 300)]
    public int TimeoutSeconds { get; set; } = 30;

    /// <summary>Per-service overrides of <see cref="TimeoutSeconds"/>.</summary>
    public Dictionary<string, int> ServiceTimeoutSeconds { get; set; } = [];
}
