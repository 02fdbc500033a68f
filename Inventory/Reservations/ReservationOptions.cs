using System.ComponentModel.DataAnnotations;

namespace Shop.Inventory.Reservations;

public sealed class ReservationOptions : IValidatableObject
{
    public const string Section = "Reservations";

    [Range(1, 86400)]
    public int DefaultTtlSeconds { get; set; } = 900;

    [Range(1, 86400)]
    public int MaxTtlSeconds { get; set; } = 3600;

    [Range(1, 3600)]
    public int SweepIntervalSeconds { get; set; } = 2;

    /// <summary>
    /// Reservation transactions one replica runs at once. Many clients on one hot row lose throughput to lock
    /// waits, so the database sees a bounded number and the rest wait their turn here.
    /// </summary>
    [Range(1, 256)]
    public int MaxConcurrentTransactions { get; set; } = 8;

    /// <summary>A default hold no client may ask for itself is a configuration mistake: the service does not start with it.</summary>
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (DefaultTtlSeconds > MaxTtlSeconds)
        {
            yield return new ValidationResult($"DefaultTtlSeconds ({DefaultTtlSeconds}) is above MaxTtlSeconds ({MaxTtlSeconds}).",
                [nameof(DefaultTtlSeconds), nameof(MaxTtlSeconds)]);
        }
    }
}
