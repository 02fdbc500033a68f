using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Shop.ServiceDefaults.Security;

namespace Shop.Orders.Orders;

/// <summary>Money as an object, so amount and currency never travel apart.</summary>
public sealed record Money(decimal Amount, string Currency);

public sealed record OrderItemV2(Guid ProductId, int Quantity, Money UnitPrice, Money Subtotal);

public sealed record OrderStatusEntryV2(string Status, string? Reason, DateTimeOffset At);

/// <summary>
/// The v2 read model: money as objects, the whole status timeline, and what the saga holds (reservation,
/// payment) so a support agent can follow an order without reading logs.
/// </summary>
public sealed record OrderV2(Guid Id, string Status, string? StatusReason, bool CancellationPending, IReadOnlyList<OrderItemV2> Items,
    Money Total, string? ReservationId, string? PaymentId, bool Refunded, IReadOnlyList<OrderStatusEntryV2> Timeline,
    DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, long Version)
{
    public static OrderV2 From(Order o) => new(o.Id, o.Status.ToString(), o.StatusReason, o.CancellationRequested && !o.IsTerminal,
        o.Lines.Select(l => new OrderItemV2(l.ProductId, l.Quantity, new Money(l.UnitPrice, o.Currency), new Money(l.Subtotal, o.Currency))).ToList(),
        new Money(o.Total, o.Currency), o.ReservationId?.ToString(), o.PaymentId, o.Refunded,
        o.History.OrderBy(h => h.Id).Select(h => new OrderStatusEntryV2(h.Status.ToString(), h.Reason, h.At)).ToList(),
        o.CreatedAt, o.UpdatedAt, o.Version);
}

public sealed record OrderPageV2(IReadOnlyList<OrderV2> Items, int Page, int PageSize, int Total);

public static class OrdersApiV2
{
    public static IEndpointRouteBuilder MapOrdersApiV2(this IEndpointRouteBuilder app)
    {
        var orders = app.MapGroup("/v2/orders").WithTags("Orders v2").RequireAuthorization(ShopPolicies.User);
        orders.MapGet("/", ListOrders).WithSummary("Orders with money objects and their status timelines.");
        orders.MapGet("/{id:guid}", GetOrder).WithSummary("One order with its status timeline and the saga's references.");
        return app;
    }

    public static async Task<Results<Ok<OrderV2>, NotFound>> GetOrder(Guid id, ClaimsPrincipal user, OrdersDbContext db, CancellationToken cancellationToken)
    {
        var order = await OrdersApi.Visible(db, user).FirstOrDefaultAsync(o => o.Id == id, cancellationToken);
        return order is null ? TypedResults.NotFound() : TypedResults.Ok(OrderV2.From(order));
    }

    public static async Task<Results<Ok<OrderPageV2>, ValidationProblem>> ListOrders(ClaimsPrincipal user, OrdersDbContext db,
        string? status = null, int page = 1, int pageSize = 20, CancellationToken cancellationToken = default)
    {
        var (orders, total, problem) = await OrdersApi.PageAsync(db, user, status, page, pageSize, cancellationToken);
        return problem is not null
            ? problem
            : TypedResults.Ok(new OrderPageV2(orders.Select(OrderV2.From).ToList(), page, pageSize, total));
    }
}
