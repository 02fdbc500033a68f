namespace Shop.Inventory.Reservations;

public sealed record ReservationItem(Guid ProductId, int Quantity);

/// <param name="TtlSeconds">How long the reservation holds its units, in seconds (DESIGN.md's name).</param>
/// <param name="Ttl">The same in seconds, under the name for it; a request names one or the other.</param>
public sealed record ReserveRequest(Guid OrderId, IReadOnlyList<ReservationItem>? Items, int? TtlSeconds, int? Ttl = null)
{
    /// <summary>The hold asked for, in seconds, under either name.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int? HoldSeconds => TtlSeconds ?? Ttl;
}

public sealed record ReservationResponse(Guid Id, Guid OrderId, string Status, DateTimeOffset ExpiresAt, IReadOnlyList<ReservationItem> Items);

public sealed record ShortProduct(Guid ProductId, int Requested, int Available);
