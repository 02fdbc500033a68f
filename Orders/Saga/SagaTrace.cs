using System.Diagnostics;
using Shop.ServiceDefaults.Telemetry;

namespace Shop.Orders.Saga;

/// <summary>The request a saga's step carries on: the one that placed the order, or the one that last cancelled it.</summary>
public sealed record SagaRequest(string? CorrelationId, string? TraceParent);

/// <summary>Where a saga step's span goes.</summary>
public static class SagaTrace
{
    /// <summary>
    /// Starts the span of one step. A first attempt carries on the request's trace, as its child. A retry may come
    /// minutes or hours after the request has been answered: it starts a trace of its own that links to the request's,
    /// so that no trace runs for hours. The correlation id ties them together either way.
    /// </summary>
    public static Activity? Start(SagaStep step, Guid orderId, SagaRequest request, int attempt)
    {
        var parsed = ActivityContext.TryParse(request.TraceParent, null, out var requested);
        var retry = attempt > 1;
        var activity = retry && parsed
            ? ShopDiagnostics.ActivitySource.StartActivity($"order saga {step}", ActivityKind.Internal, parentContext: default, links: [new ActivityLink(requested)])
            : ShopDiagnostics.ActivitySource.StartActivity($"order saga {step}", ActivityKind.Internal, requested);
        activity?.SetTag("shop.order.id", orderId.ToString());
        activity?.SetTag("shop.saga.attempt", attempt);
        return activity;
    }
}
