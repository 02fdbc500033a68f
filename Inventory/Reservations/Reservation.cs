namespace Shop.Inventory.Reservations;

public enum ReservationStatus { Active, Confirmed, Released, Expired }

/// <summary>What a transition does to the stock of each of the reservation's items.</summary>
public enum StockChange
{
    /// <summary>Nothing: the transition was refused, or had been made before.</summary>
    None,

    /// <summary>The reserved units are sold: quantity and reserved both drop.</summary>
    Sell,

    /// <summary>The reserved units become available again: reserved drops.</summary>
    Unreserve,

    /// <summary>The sold units go back on the shelf (a refund): quantity rises.</summary>
    Restock,
}

public sealed record Transition(TransitionResult Result, StockChange Change)
{
    public static readonly Transition AlreadyDone = new(TransitionResult.AlreadyDone, StockChange.None);
    public static readonly Transition Expired = new(TransitionResult.Expired, StockChange.None);
    public static readonly Transition WrongState = new(TransitionResult.WrongState, StockChange.None);
}

/// <summary>
/// Units held for one order: Active until it is confirmed (sold), released, or expires. Confirm and release are
/// idempotent: asked again, they answer as the first time did and change nothing. A confirmed reservation can still
/// be released (a refund); an expired one can be neither confirmed nor revived, and releasing it is already done.
/// <para>
/// Expiry is judged by the clock passed in, which is the database's: the sweeper that expires reservations judges by
/// the same clock, so a replica whose clock runs ahead cannot refuse a confirmation the sweeper would not yet expire.
/// </para>
/// </summary>
public sealed class Reservation
{
    public Reservation(Guid id, Guid orderId, ReservationStatus status, DateTimeOffset expiresAt, IReadOnlyList<ReservationItem> items)
    {
        if (items.Count == 0 || items.Any(item => item.Quantity <= 0))
        {
            throw new ArgumentException("A reservation holds at least one item, each of at least one unit.", nameof(items));
        }

        (Id, OrderId, Status, ExpiresAt, Items) = (id, orderId, status, expiresAt, items);
    }

    public Guid Id { get; }
    public Guid OrderId { get; }
    public ReservationStatus Status { get; private set; }
    public DateTimeOffset ExpiresAt { get; }
    public IReadOnlyList<ReservationItem> Items { get; }

    /// <summary>Active past its expiry, and not yet swept.</summary>
    public bool IsDue(DateTimeOffset now) => Status == ReservationStatus.Active && ExpiresAt <= now;

    public Transition Confirm(DateTimeOffset now) => Status switch
    {
        ReservationStatus.Confirmed => Transition.AlreadyDone,
        ReservationStatus.Active when !IsDue(now) => MoveTo(ReservationStatus.Confirmed, StockChange.Sell),
        ReservationStatus.Active or ReservationStatus.Expired => Transition.Expired,
        _ => Transition.WrongState,
    };

    /// <summary>
    /// A reservation that is due but not yet swept is expired now, as the sweeper would: its units come back and it is
    /// Expired, as it already read (a confirmation was refused as expired, a repeat of the order answered "Expired").
    /// Released, it would have changed its story after the fact, and its event would have said "released", not "expired".
    /// </summary>
    public Transition Release(DateTimeOffset now) => Status switch
    {
        ReservationStatus.Active when IsDue(now) => MoveTo(ReservationStatus.Expired, StockChange.Unreserve),
        ReservationStatus.Active => MoveTo(ReservationStatus.Released, StockChange.Unreserve),
        ReservationStatus.Confirmed => MoveTo(ReservationStatus.Released, StockChange.Restock),
        _ => Transition.AlreadyDone,
    };

    public ReservationResponse ToResponse() => new(Id, OrderId, Status.ToString(), ExpiresAt, Items);

    /// <summary>
    /// As it stands at <paramref name="now"/>: a reservation past its expiry is Expired, swept or not (a confirmation would
    /// be refused as expired). A caller that read "Active" for one the sweeper had not reached took payment against it.
    /// </summary>
    public ReservationResponse ToResponse(DateTimeOffset now) =>
        IsDue(now) ? new(Id, OrderId, nameof(ReservationStatus.Expired), ExpiresAt, Items) : ToResponse();

    private Transition MoveTo(ReservationStatus status, StockChange change)
    {
        Status = status;
        return new Transition(TransitionResult.Done, change);
    }
}
