using System.Net;
using System.Text;
using Shop.Orders.Saga;

namespace Shop.Tests.Unit;

/// <summary>How Orders reads Inventory's answers to a reservation, with Inventory's answer given by a stub handler.</summary>
public sealed class InventoryClientTests
{
    private sealed class Answer(HttpStatusCode status, string body, string mediaType = "application/json") : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            Task.FromResult(new HttpResponseMessage(status) { Content = new StringContent(body, Encoding.UTF8, mediaType) });
    }

    private static Task<ReserveResult> ReserveAsync(HttpStatusCode status, string body, string mediaType = "application/json")
    {
        var client = new InventoryClient(new HttpClient(new Answer(status, body, mediaType)) { BaseAddress = new Uri("http://inventory") });
        return client.ReserveAsync(Guid.NewGuid(), [new ReservationLine(Guid.NewGuid(), 1)], TestContext.Current.CancellationToken);
    }

    private static string Reservation(Guid id, string status) =>
        $$"""{"id":"{{id}}","orderId":"{{Guid.NewGuid()}}","status":"{{status}}","expiresAt":"2026-12-02T10:00:00Z","items":[]}""";

    [Theory]
    [InlineData(HttpStatusCode.Created, "Active")]
    [InlineData(HttpStatusCode.OK, "Active")]
    [InlineData(HttpStatusCode.OK, "Confirmed")]
    public async Task A_reservation_that_holds_its_units_is_reserved(HttpStatusCode status, string state)
    {
        var id = Guid.NewGuid();
        Assert.Equal(new ReserveResult.Reserved(id), await ReserveAsync(status, Reservation(id, state)));
    }

    /// <summary>
    /// A repeat is answered with the order's reservation as it is now. One that expired or was released while the saga
    /// could not record its step holds nothing: taken as reserved, the order went on to take the customer's payment.
    /// </summary>
    [Theory]
    [InlineData("Expired", "reservation_expired")]
    [InlineData("Released", "reservation_released")]
    public async Task A_repeat_answered_with_a_reservation_that_no_longer_holds_anything_is_refused(string state, string reason)
    {
        var result = await ReserveAsync(HttpStatusCode.OK, Reservation(Guid.NewGuid(), state));
        Assert.Equal(reason, Assert.IsType<ReserveResult.Refused>(result).Reason);
    }

    [Theory]
    [InlineData(HttpStatusCode.Conflict, """{"title":"Insufficient stock.","detail":"2 short.","shortProducts":[]}""", "out_of_stock")]
    [InlineData(HttpStatusCode.UnprocessableEntity, """{"title":"Unknown products.","unknownProducts":[]}""", "unknown_products")]
    [InlineData(HttpStatusCode.Conflict, "not json", "reservation_refused")]
    public async Task A_refusal_names_its_reason(HttpStatusCode status, string body, string reason) =>
        Assert.Equal(reason, Assert.IsType<ReserveResult.Refused>(await ReserveAsync(status, body, "application/problem+json")).Reason);
}
