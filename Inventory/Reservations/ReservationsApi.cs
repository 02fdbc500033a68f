using Microsoft.AspNetCore.Http.HttpResults;
using Shop.ServiceDefaults.Security;

namespace Shop.Inventory.Reservations;

public static class ReservationsApi
{
    public static IEndpointRouteBuilder MapReservationsApi(this IEndpointRouteBuilder app)
    {
        var reservations = app.MapGroup("/v1/reservations").WithTags("Reservations").RequireAuthorization(ShopPolicies.Service);
        reservations.MapPost("/", Reserve);
        reservations.MapGet("/{id:guid}", Get);
        reservations.MapPost("/{id:guid}/confirm", Confirm);
        reservations.MapPost("/{id:guid}/release", Release);
        return app;
    }

    /// <summary>All items or none. Idempotent per order: a repeat returns the same reservation; other items are a conflict.</summary>
    public static async Task<Results<Created<ReservationResponse>, Ok<ReservationResponse>, ValidationProblem, ProblemHttpResult>> Reserve(
        ReserveRequest request, ReservationStore store, Microsoft.Extensions.Options.IOptions<ReservationOptions> options, CancellationToken cancellationToken)
    {
        var errors = Validate(request, options.Value);
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        return await store.ReserveAsync(request, cancellationToken) switch
        {
            ReserveOutcome.Created c => TypedResults.Created($"/v1/reservations/{c.Reservation.Id}", c.Reservation),
            ReserveOutcome.Repeated r => TypedResults.Ok(r.Reservation),
            ReserveOutcome.DifferentItems d => TypedResults.Problem(statusCode: 409, title: "The order already has a different reservation.",
                detail: $"Order {request.OrderId} reserved other items (reservation {d.Existing.Id}). An order has one reservation, even once it is released: other items need another order.",
                extensions: new Dictionary<string, object?> { ["reservationId"] = d.Existing.Id }),
            ReserveOutcome.Insufficient i => TypedResults.Problem(statusCode: 409, title: "Insufficient stock.",
                detail: $"Not enough stock for {string.Join(", ", i.Products.Select(p => p.ProductId))}.",
                extensions: new Dictionary<string, object?> { ["shortProducts"] = i.Products }),
            ReserveOutcome.UnknownProducts u => TypedResults.Problem(statusCode: 422, title: "Unknown products.",
                detail: $"Not for sale (unknown, deleted or inactive): {string.Join(", ", u.ProductIds)}.",
                extensions: new Dictionary<string, object?> { ["unknownProducts"] = u.ProductIds }),
            ReserveOutcome.OrderClosed => TypedResults.Problem(statusCode: 409, title: "The order is closed.",
                detail: $"Order {request.OrderId} was cancelled or failed; it cannot reserve stock.",
                extensions: new Dictionary<string, object?> { ["orderClosed"] = true }),
            ReserveOutcome.MixedTenants => TypedResults.Problem(statusCode: 422, title: "Products of several tenants.",
                detail: "A reservation covers the products of one tenant."),
            var other => throw new InvalidOperationException($"Unexpected outcome {other}."),
        };
    }

    public static async Task<Results<Ok<ReservationResponse>, NotFound>> Get(Guid id, ReservationStore store, CancellationToken cancellationToken) =>
        await store.GetAsync(id, cancellationToken) is { } reservation ? TypedResults.Ok(reservation) : TypedResults.NotFound();

    public static async Task<Results<Ok<ReservationResponse>, NotFound, ProblemHttpResult>> Confirm(Guid id, ReservationStore store, CancellationToken cancellationToken) =>
        Answer(await store.ConfirmAsync(id, cancellationToken), "confirmed");

    public static async Task<Results<Ok<ReservationResponse>, NotFound, ProblemHttpResult>> Release(Guid id, ReservationStore store, CancellationToken cancellationToken) =>
        Answer(await store.ReleaseAsync(id, cancellationToken), "released");

    private static Results<Ok<ReservationResponse>, NotFound, ProblemHttpResult> Answer((TransitionResult Result, ReservationResponse? Reservation) outcome, string verb) =>
        outcome.Result switch
        {
            TransitionResult.Done or TransitionResult.AlreadyDone => TypedResults.Ok(outcome.Reservation!),
            TransitionResult.NotFound => TypedResults.NotFound(),
            TransitionResult.Expired => TypedResults.Problem(statusCode: 410, title: "The reservation has expired.",
                detail: "Its stock went back to the shelf; reserve again."),
            _ => TypedResults.Problem(statusCode: 409, title: $"The reservation cannot be {verb}.",
                detail: $"It is {outcome.Reservation!.Status}."),
        };

    private static Dictionary<string, string[]> Validate(ReserveRequest request, ReservationOptions options)
    {
        var errors = new Dictionary<string, string[]>();
        if (request.OrderId == Guid.Empty)
        {
            errors["orderId"] = ["Required."];
        }

        if (request is { TtlSeconds: not null, Ttl: not null })
        {
            errors["ttl"] = ["Either ttl or ttlSeconds (both in seconds), not both."];
        }
        else if (request.HoldSeconds is { } ttl && (ttl < 1 || ttl > options.MaxTtlSeconds))
        {
            errors[request.TtlSeconds is null ? "ttl" : "ttlSeconds"] = [$"Between 1 and {options.MaxTtlSeconds} seconds."];
        }

        if (request.Items is not { Count: > 0 and <= 100 } items)
        {
            errors["items"] = ["Between 1 and 100 items."];
            return errors;
        }

        // Each item is checked, a null one too, so that one answer names every line the client has to correct.
        for (var i = 0; i < items.Count; i++)
        {
            if (items[i] is null)
            {
                errors[$"items[{i}]"] = ["An item, not null."];
                continue;
            }

            if (items[i].ProductId == Guid.Empty)
            {
                errors[$"items[{i}].productId"] = ["Required."];
            }

            if (items[i].Quantity is < 1 or > 1000)
            {
                errors[$"items[{i}].quantity"] = ["Between 1 and 1000."];
            }
        }

        if (items.Where(item => item is not null).GroupBy(i => i.ProductId).Any(g => g.Count() > 1))
        {
            errors["items"] = ["Each product may appear once."];
        }

        return errors;
    }
}
