using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Shop.Orders.Catalog;
using Shop.Orders.Saga;
using Shop.ServiceDefaults.Correlation;
using Shop.ServiceDefaults.Errors;
using Shop.ServiceDefaults.Idempotency;
using Shop.ServiceDefaults.Messaging;
using Shop.ServiceDefaults.Paging;
using Shop.ServiceDefaults.Security;

namespace Shop.Orders.Orders;

public sealed record CreateOrderItem(Guid ProductId, int Quantity);

public sealed record CreateOrderRequest(IReadOnlyList<CreateOrderItem>? Items);

public sealed record OrderItemResponse(Guid ProductId, int Quantity, decimal UnitPrice, decimal Subtotal);

/// <summary>The v1 shape of an order (DESIGN.md): amounts as numbers beside one currency.</summary>
public sealed record OrderResponse(Guid Id, string Status, string? StatusReason, IReadOnlyList<OrderItemResponse> Items,
    decimal Total, string Currency, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt)
{
    public static OrderResponse From(Order o) => new(o.Id, o.Status.ToString(), o.StatusReason,
        o.Lines.Select(l => new OrderItemResponse(l.ProductId, l.Quantity, l.UnitPrice, l.Subtotal)).ToList(),
        o.Total, o.Currency, o.CreatedAt, o.UpdatedAt);
}

public sealed record OrderPage(IReadOnlyList<OrderResponse> Items, int Page, int PageSize, int Total);

public static class OrdersApi
{
    public static IEndpointRouteBuilder MapOrdersApi(this IEndpointRouteBuilder app)
    {
        var orders = app.MapGroup("/v1/orders").WithTags("Orders").RequireAuthorization(ShopPolicies.User);
        orders.MapPost("/", CreateOrder).RequireIdempotencyKey().WithSummary("Place an order; its saga reserves stock and takes payment.");
        orders.MapGet("/", ListOrders).WithSummary("Your orders (an admin sees the tenant's), newest first.");
        orders.MapGet("/{id:guid}", GetOrder).WithSummary("One order.");
        orders.MapPost("/{id:guid}/cancel", CancelOrder).WithSummary("Cancel an order that has not shipped: payment refunded, stock released.");
        orders.MapPost("/{id:guid}/ship", ShipOrder).RequireAuthorization(ShopPolicies.Admin).WithSummary("Mark a paid order shipped (admin).");
        return app;
    }

    public static async Task<Results<Accepted<OrderResponse>, ValidationProblem>> CreateOrder(
        CreateOrderRequest request, ClaimsPrincipal user, CatalogClient catalog, OrdersDbContext db, SagaSignal sagas, TimeProvider clock,
        HttpContext httpContext, CancellationToken cancellationToken)
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
        var location = $"/v1/orders/{order.Id}";
        OrderResponse response;
        await using (var transaction = await db.Database.BeginTransactionAsync(cancellationToken))
        {
            db.Orders.Add(order);
            db.AddEvent(OrderEvents.Exchange, OrderEvents.Created, 1, order.TenantId, order.Id.ToString(), order.Version,
                new OrderCreatedData(order.Id, order.CustomerId, order.Total, order.Currency,
                    order.Lines.Select(l => new OrderCreatedItem(l.ProductId, l.Quantity, l.UnitPrice)).ToList()), clock);
            await db.SaveChangesAsync(cancellationToken);
            response = OrderResponse.From(order);
            await db.Database.ExecuteSqlInterpolatedAsync(
                $"""
                INSERT INTO order_sagas (order_id, tenant_id, step, correlation_id, traceparent)
                VALUES ({order.Id}, {order.TenantId}, {nameof(SagaStep.Reserve)}, {CorrelationContext.Current}, {RequestTrace()})
                """,
                cancellationToken);
            // The order and the answer a retry with this Idempotency-Key will get commit together.
            await httpContext.IdempotencyClaim().CompleteAsync(db, StatusCodes.Status202Accepted, location, response, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        sagas.Notify();
        return TypedResults.Accepted(location, response);
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
        var (orders, total, problem) = await PageAsync(db, user, status, page, pageSize, cancellationToken);
        return problem is not null
            ? problem
            : TypedResults.Ok(new OrderPage(orders.Select(OrderResponse.From).ToList(), page, pageSize, total));
    }

    /// <summary>
    /// Cancelling asks the saga to undo what it did (refund, release) and answers 202 at once; the order reads
    /// Cancelled when that is done. Repeating it is harmless; a shipped or failed order cannot be cancelled (409).
    /// </summary>
    public static async Task<Results<Accepted<OrderResponse>, NotFound>> CancelOrder(Guid id, ClaimsPrincipal user, OrdersDbContext db,
        SagaSignal sagas, TimeProvider clock, CancellationToken cancellationToken)
    {
        var reason = user.IsAdmin() ? "cancelled_by_admin" : "cancelled_by_customer";
        var order = await ChangeAsync(db, user, id, order => order.RequestCancellation(reason, clock.GetUtcNow()),
            $"""
            UPDATE order_sagas SET step = CASE WHEN step = 'Done' THEN 'Compensate' ELSE step END, attempts = 0, next_attempt_at = now(),
                correlation_id = {CorrelationContext.Current}, traceparent = {RequestTrace()}
            WHERE order_id = {id}
            """,
            cancellationToken);
        if (order is null)
        {
            return TypedResults.NotFound();
        }

        sagas.Notify();
        return TypedResults.Accepted($"/v1/orders/{order.Id}", OrderResponse.From(order));
    }

    /// <summary>The request's trace, which the saga it starts or redirects carries on (W3C traceparent; null without one).</summary>
    private static string? RequestTrace() =>
        System.Diagnostics.Activity.Current is { IdFormat: System.Diagnostics.ActivityIdFormat.W3C } activity ? activity.Id : null;

    public static async Task<Results<Ok<OrderResponse>, NotFound>> ShipOrder(Guid id, ClaimsPrincipal user, OrdersDbContext db, TimeProvider clock,
        CancellationToken cancellationToken)
    {
        var order = await ChangeAsync(db, user, id, order =>
        {
            if (order.Status == OrderStatus.Shipped)
            {
                return false;
            }

            order.Ship(clock.GetUtcNow());
            db.AddEvent(OrderEvents.Exchange, OrderEvents.Shipped, 1, order.TenantId, order.Id.ToString(), order.Version,
                new OrderShippedData(order.Id), clock);
            return true;
        }, null, cancellationToken);
        return order is null ? TypedResults.NotFound() : TypedResults.Ok(OrderResponse.From(order));
    }

    internal static async Task<(List<Order> Orders, int Total, ValidationProblem? Problem)> PageAsync(OrdersDbContext db, ClaimsPrincipal user,
        string? status, int page, int pageSize, CancellationToken cancellationToken)
    {
        var errors = PageRequest.Errors(page, pageSize);
        OrderStatus? wanted = null;
        if (status is not null)
        {
            // One name, matched as a name: Enum.TryParse also takes numbers and ORs comma-joined names together
            // ("StockReserved,Paid" is 1 | 2, Shipped).
            var name = Enum.GetNames<OrderStatus>().FirstOrDefault(n => string.Equals(n, status.Trim(), StringComparison.OrdinalIgnoreCase));
            if (name is null)
            {
                errors["status"] = [$"One of {string.Join(", ", Enum.GetNames<OrderStatus>())}."];
            }
            else
            {
                wanted = Enum.Parse<OrderStatus>(name);
            }
        }

        if (errors.Count > 0)
        {
            return ([], 0, TypedResults.ValidationProblem(errors));
        }

        var query = Visible(db, user);
        if (wanted is { } s)
        {
            query = query.Where(o => o.Status == s);
        }

        // One snapshot for the count and the page: under read committed each had its own, and an order placed between
        // them made the total disagree with the items.
        await using var snapshot = await db.Database.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken);
        var total = await query.CountAsync(cancellationToken);
        var orders = await query.OrderByDescending(o => o.CreatedAt).ThenByDescending(o => o.Id)
            .Skip((page - 1) * pageSize).Take(pageSize).ToListAsync(cancellationToken);
        return (orders, total, null);
    }

    internal static IQueryable<Order> Visible(OrdersDbContext db, ClaimsPrincipal user)
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

    /// <summary>Applies a change to a visible order under its version, trying again if the saga moved it meanwhile.</summary>
    private static async Task<Order?> ChangeAsync(OrdersDbContext db, ClaimsPrincipal user, Guid id, Func<Order, bool> change,
        FormattableString? alsoRun, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            db.ChangeTracker.Clear();
            var order = await Visible(db, user).AsTracking().FirstOrDefaultAsync(o => o.Id == id, cancellationToken);
            if (order is null || !change(order))
            {
                return order;
            }

            try
            {
                await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
                await db.SaveChangesAsync(cancellationToken);
                if (alsoRun is not null)
                {
                    await db.Database.ExecuteSqlAsync(alsoRun, cancellationToken);
                }

                await transaction.CommitAsync(cancellationToken);
                return order;
            }
            catch (DbUpdateConcurrencyException) when (attempt < 5)
            {
                // The saga committed a step in between; decide again on the fresh order.
            }
        }
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

        if (items.Any(item => item is null))
        {
            errors["items"] = ["No item may be null."];
            return errors;
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
