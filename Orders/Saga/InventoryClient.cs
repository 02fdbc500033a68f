using System.Net;
using System.Text.Json;

namespace Shop.Orders.Saga;

/// <summary>
/// Inventory's reservation API (<c>http://inventory</c>, discovered, with resilience) called as the Orders
/// service. Every call is idempotent per order or per reservation, so the resilience handler may retry it
/// (the Idempotency-Key header tells it so). Network failures and 5xx after retries surface as exceptions:
/// the saga decides what they mean.
/// </summary>
public sealed class InventoryClient(HttpClient http)
{
    public async Task<ReserveResult> ReserveAsync(Guid orderId, IReadOnlyList<ReservationLine> items, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/reservations")
        {
            Content = JsonContent.Create(new { orderId, items }),
        };
        request.Headers.Add("Idempotency-Key", $"reserve-{orderId:N}");
        using var response = await http.SendAsync(request, cancellationToken);
        if (response.IsSuccessStatusCode)
        {
            // A repeat is answered with the order's reservation as it is now (ADR 0006): one that expired or was released
            // while this step could not be recorded (the orders database down, say) holds nothing, and the order must not
            // go on to take payment against it.
            var reservation = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
            var status = reservation.TryGetProperty("status", out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
            return status switch
            {
                "Expired" => new ReserveResult.Refused("reservation_expired", "The order's reservation expired before the order could go on."),
                "Released" => new ReserveResult.Refused("reservation_released", "The order's reservation was released before the order could go on."),
                _ => new ReserveResult.Reserved(reservation.GetProperty("id").GetGuid()),
            };
        }

        if (response.StatusCode is HttpStatusCode.Conflict or HttpStatusCode.UnprocessableEntity or HttpStatusCode.Gone)
        {
            // A body that is not a problem object still means "refused"; only its wording is lost.
            var problem = await ReadProblemAsync(response, cancellationToken);
            bool Has(string name) => problem.ValueKind == JsonValueKind.Object && problem.TryGetProperty(name, out _);
            var reason = Has("shortProducts") ? "out_of_stock" : Has("unknownProducts") ? "unknown_products" : "reservation_refused";
            var detail = Has("detail") && problem.GetProperty("detail").ValueKind == JsonValueKind.String
                ? problem.GetProperty("detail").GetString()!
                : response.ReasonPhrase ?? "";
            return new ReserveResult.Refused(reason, detail);
        }

        throw Unexpected(response, "reserve");
    }

    public Task<ReservationChange> ConfirmAsync(Guid reservationId, CancellationToken cancellationToken) =>
        ChangeAsync(reservationId, "confirm", cancellationToken);

    public Task<ReservationChange> ReleaseAsync(Guid reservationId, CancellationToken cancellationToken) =>
        ChangeAsync(reservationId, "release", cancellationToken);

    private async Task<ReservationChange> ChangeAsync(Guid reservationId, string action, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/reservations/{reservationId}/{action}");
        request.Headers.Add("Idempotency-Key", $"{action}-{reservationId:N}");
        using var response = await http.SendAsync(request, cancellationToken);
        return response.StatusCode switch
        {
            HttpStatusCode.OK => ReservationChange.Done,
            HttpStatusCode.Gone => ReservationChange.Expired,
            HttpStatusCode.Conflict => ReservationChange.WrongState,
            HttpStatusCode.NotFound => ReservationChange.NotFound,
            _ => throw Unexpected(response, action),
        };
    }

    private static async Task<JsonElement> ReadProblemAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            return await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
        }
        catch (JsonException)
        {
            return default;
        }
    }

    private static HttpRequestException Unexpected(HttpResponseMessage response, string action) =>
        new($"Inventory answered {(int)response.StatusCode} to {action}.", null, response.StatusCode);
}
