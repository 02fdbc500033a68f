namespace Shop.Inventory.Reservations;

public abstract record ReserveOutcome
{
    public sealed record Created(ReservationResponse Reservation) : ReserveOutcome;

    /// <summary>The same order reserved the same items before: its reservation, unchanged.</summary>
    public sealed record Repeated(ReservationResponse Reservation) : ReserveOutcome;

    public sealed record DifferentItems(ReservationResponse Existing) : ReserveOutcome;

    public sealed record Insufficient(IReadOnlyList<ShortProduct> Products) : ReserveOutcome;

    public sealed record UnknownProducts(IReadOnlyList<Guid> ProductIds) : ReserveOutcome;

    public sealed record MixedTenants : ReserveOutcome;

    /// <summary>The order was cancelled or failed before this reservation arrived; it will not hold stock.</summary>
    public sealed record OrderClosed : ReserveOutcome;
}

public enum TransitionResult { Done, AlreadyDone, NotFound, Expired, WrongState }
