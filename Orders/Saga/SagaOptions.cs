using System.ComponentModel.DataAnnotations;

namespace Shop.Orders.Saga;

public sealed class SagaOptions
{
    public const string Section = "Saga";

    /// <summary>Sagas one replica drives at once.</summary>
    [Range(1, 256)]
    public int MaxConcurrentSagas { get; set; } = 32;

    /// <summary>How often an idle worker looks for due sagas (work placed on this replica starts at once).</summary>
    [Range(10, 60_000)]
    public int PollIntervalMilliseconds { get; set; } = 250;

    /// <summary>
    /// How long a claim keeps other replicas off a saga. A replica that dies holding one frees it after this;
    /// a step that outlives it loses its commit (the fence), and the next holder repeats the step idempotently.
    /// </summary>
    [Range(2, 600)]
    public int LeaseSeconds { get; set; } = 20;

    /// <summary>Attempts at reserving stock before the order fails as "inventory_unavailable".</summary>
    [Range(1, 100)]
    public int ReserveAttempts { get; set; } = 4;

    /// <summary>Attempts at authorizing payment before the order is cancelled as "payment_unavailable".</summary>
    [Range(1, 100)]
    public int PaymentAttempts { get; set; } = 4;

    [Range(1, 600_000)]
    public int RetryBaseDelayMilliseconds { get; set; } = 1000;

    [Range(1, 3_600_000)]
    public int RetryMaxDelayMilliseconds { get; set; } = 30_000;

    /// <summary>Exponential backoff with a cap; steps that must finish (confirm, compensate) retry for ever at the cap.</summary>
    public TimeSpan RetryDelay(int attempts) =>
        TimeSpan.FromMilliseconds(Math.Min(RetryMaxDelayMilliseconds, RetryBaseDelayMilliseconds * Math.Pow(2, Math.Clamp(attempts - 1, 0, 20))));
}
