namespace Shop.Inventory.Reservations;

public sealed record ReservationItem(Guid ProductId, int Quantity);

public sealed record ReserveRequest(Guid OrderId, IReadOnlyList<ReservationItem>? Items, int? TtlSeconds);

public sealed record ReservationResponse(Guid Id, Guid OrderId, string Status, DateTimeOffset ExpiresAt, IReadOnlyList<ReservationItem> Items);

public sealed record ShortProduct(Guid ProductId, int Requested, int Available);
