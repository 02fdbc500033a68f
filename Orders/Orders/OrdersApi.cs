using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Shop.Orders.Catalog;
using Shop.ServiceDefaults.Errors;
using Shop.ServiceDefaults.Idempotency;
using Shop.ServiceDefaults.Messaging;
using Shop.ServiceDefaults.Security;

namespace Shop.Orders.Orders;

public sealed record CreateOrderItem(Guid ProductId, int Quantity);

public sealed record CreateOrderRequest(IReadOnlyList<CreateOrderItem>? Items);

public sealed record OrderItemResponse(Guid ProductId, int Quantity, decimal UnitPrice, decimal Subtotal);

public sealed record OrderResponse(Guid Id, string Status, string? StatusReason, IReadOnlyList<OrderItemResponse> Items,
    decimal Total, string Currency, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt)
{
    public static OrderResponse From(Order o) => new(o.Id, o.Status.ToString(), null,
        o.Lines.Select(l => new OrderItemResponse(l.ProductId, l.Quantity, l.UnitPrice, l.Subtotal)).ToList(),
        o.Total, o.Currency, o.CreatedAt, o.UpdatedAt);
}

public sealed record OrderPage(IReadOnlyList<OrderResponse> Items, int Page, int PageSize, int Total);

public sealed record OrderCreated(Guid OrderId, decimal Total, string Currency, IReadOnlyList<CreateOrderItem> Items);

public static class OrdersApi
{
    public const string Exchange = "orders.events";

    public static IEndpointRouteBuilder MapOrdersApi(this IEndpointRouteBuilder app)
    {
        var orders = app.MapGroup("/v1/orders").WithTags("Orders").RequireAuthorization(ShopPolicies.User);
        orders.MapPost("/", CreateOrder).RequireIdempotencyKey();
        orders.MapGet("/", ListOrders);
        orders.MapGet("/{id:guid}", GetOrder);
        return app;
    }

    public static async Task<Results<Accepted<OrderResponse>, ValidationProblem>> CreateOrder(
        CreateOrderRequest request, ClaimsPrincipal user, CatalogClient catalog, OrdersDbContext db, TimeProvider clock, CancellationToken cancellationToken)
    {
        var errors = Validate(request);
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        var products = await catalog.LookupAsync(user.TenantId()!, request.Items!.Select(i => i.ProductId).ToList(), cancellationToken);
        var lines = new List<(Guid, int, decimal, string)>();
        foreach (var item in request.Items!)
        {
            if (!products.TryGetValue(item.ProductId, out var product) || !product.Active)
            {
                throw new DomainException("Unknown product.", $"Product {item.ProductId} does not exist or is not for sale.",
                    StatusCodes.Status422UnprocessableEntity);
            }

            lines.Add((item.ProductId, item.Quantity, product.Price.Amount, product.Price.Currency));
        }

        var order = Order.Place(user.TenantId()!, user.UserId()!, lines, clock.GetUtcNow());
        db.Orders.Add(order);
        db.AddEvent(Exchange, "order.created", 1, order.TenantId, order.Id.ToString(), order.Version,
            new OrderCreated(order.Id, order.Total, order.Currency, request.Items!), clock);
        await db.SaveChangesAsync(cancellationToken);
        return TypedResults.Accepted($"/v1/orders/{order.Id}", OrderResponse.From(order));
    }

    /// <summary>A customer sees their own orders; an admin sees the tenant's. Anything else is 404, not 403: ids reveal nothing.</summary>
    public static async Task<Results<Ok<OrderResponse>, NotFound>> GetOrder(Guid id, ClaimsPrincipal user, OrdersDbContext db, CancellationToken cancellationToken)
    {
        var order = await Visible(db, user).FirstOrDefaultAsync(o => o.Id == id, cancellationToken);
        return order is null ? TypedResults.NotFound() : TypedResults.Ok(OrderResponse.From(order));
    }

    public static async Task<Results<Ok<OrderPage>, ValidationProblem>> ListOrders(ClaimsPrincipal user, OrdersDbContext db,
        string? status = null, int page = 1, int pageSize = 20, CancellationToken cancellationToken = default)
    {
        OrderStatus? wanted = null;
        if (status is not null)
        {
            if (!Enum.TryParse<OrderStatus>(status, ignoreCase: true, out var parsed) || !Enum.IsDefined(parsed))
            {
                return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["status"] = [$"One of {string.Join(", ", Enum.GetNames<OrderStatus>())}."] });
            }

            wanted = parsed;
        }

        if (page < 1 || pageSize is < 1 or > 100)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["page"] = ["page ≥ 1 and pageSize 1–100."] });
        }

        var query = Visible(db, user);
        if (wanted is { } s)
        {
            query = query.Where(o => o.Status == s);
        }

        var total = await query.CountAsync(cancellationToken);
        var orders = await query.OrderByDescending(o => o.CreatedAt).Skip((page - 1) * pageSize).Take(pageSize).ToListAsync(cancellationToken);
        return TypedResults.Ok(new OrderPage(orders.Select(OrderResponse.From).ToList(), page, pageSize, total));
    }

    private static IQueryable<Order> Visible(OrdersDbContext db, ClaimsPrincipal user)
    {
        var tenant = user.TenantId();
        var query = db.Orders.AsNoTracking().Where(o => o.TenantId == tenant);
        if (!user.IsAdmin())
        {
            var customer = user.UserId();
            query = query.Where(o => o.CustomerId == customer);
        }

        return query;
    }

    private static Dictionary<string, string[]> Validate(CreateOrderRequest request)
    {
        var errors = new Dictionary<string, string[]>();
        if (request.Items is not { Count: > 0 } items)
        {
            errors["items"] = ["At least one item is required."];
            return errors;
        }

        if (items.Count > 100)
        {
            errors["items"] = ["At most 100 items per order."];
        }

        for (var i = 0; i < items.Count; i++)
        {
            if (items[i].ProductId == Guid.Empty)
            {
                errors[$"items[{i}].productId"] = ["A product id is required."];
            }

            if (items[i].Quantity is < 1 or > 1000)
            {
                errors[$"items[{i}].quantity"] = ["Must be between 1 and 1000."];
            }
        }

        if (items.GroupBy(i => i.ProductId).Any(g => g.Count() > 1))
        {
            errors["items"] = ["Each product may appear once; combine the quantities."];
        }

        return errors;
    }
}
