using Shop.Orders.Orders;

namespace Shop.Orders.Saga;

/// <summary>Where an order's saga stands. Stored in <c>order_sagas.step</c>.</summary>
public enum SagaStep { Reserve, Pay, Confirm, Compensate, Done }

/// <summary>An event the transition raises, published through the outbox in the same commit.</summary>
public sealed record SagaEvent(string Type, object Data);

/// <summary>The outcome of one step: the next step, or the same step again after <see cref="RetryAfter"/>.</summary>
public sealed record SagaTransition(SagaStep Next, TimeSpan? RetryAfter = null, SagaEvent? Event = null, string? Error = null)
{
    public static SagaTransition Retry(SagaStep step, TimeSpan after, string error) => new(step, after, null, error);
}

/// <summary>
/// The saga's decisions, free of I/O: given the order and what a remote call answered, change the order and
/// say what comes next. <c>OrderSaga</c> makes the calls and commits the result.
/// </summary>
public static class SagaTransitions
{
    public static SagaTransition Reserved(Order order, ReserveResult result, DateTimeOffset now) => result switch
    {
        ReserveResult.Reserved r when order.CancellationRequested => Compensate(order, r.ReservationId),
        ReserveResult.Reserved r => Apply(() => order.MarkStockReserved(r.ReservationId, now), SagaStep.Pay,
            new SagaEvent(OrderEvents.StockReserved, new OrderStockReservedData(order.Id, r.ReservationId))),
        ReserveResult.Refused when order.CancellationRequested => new SagaTransition(SagaStep.Compensate),
        ReserveResult.Refused refused => Fail(order, $"{refused.Reason}: {refused.Detail}", now),
        _ => throw new ArgumentOutOfRangeException(nameof(result)),
    };

    /// <summary>Inventory did not answer. After the last attempt the order fails; Inventory releases whatever it might hold when order.failed reaches it.</summary>
    public static SagaTransition ReserveUnavailable(Order order, int attempts, string error, SagaOptions options, DateTimeOffset now) =>
        attempts < options.ReserveAttempts
            ? SagaTransition.Retry(SagaStep.Reserve, options.RetryDelay(attempts), error)
            : Fail(order, $"inventory_unavailable: {error}", now);

    public static SagaTransition Authorized(Order order, PaymentResult result, DateTimeOffset now) => result switch
    {
        PaymentResult.Authorized a => Apply(() => order.RecordPaymentAuthorized(a.PaymentId, now), SagaStep.Confirm),
        PaymentResult.Declined d => CancelWith(order, $"payment_declined: {d.Reason}", now),
        _ => throw new ArgumentOutOfRangeException(nameof(result)),
    };

    public static SagaTransition PaymentUnavailable(Order order, int attempts, string error, SagaOptions options, DateTimeOffset now) =>
        attempts < options.PaymentAttempts
            ? SagaTransition.Retry(SagaStep.Pay, options.RetryDelay(attempts), error)
            : CancelWith(order, "payment_unavailable", now);

    public static SagaTransition Confirmed(Order order, ReservationChange change, DateTimeOffset now) => change switch
    {
        ReservationChange.Done => Apply(() => order.MarkPaid(now), SagaStep.Done,
            new SagaEvent(OrderEvents.Paid, new OrderPaidData(order.Id, order.PaymentId!, order.Total, order.Currency))),
        // The reservation expired (or was released) before we could confirm it: give the money back.
        _ => CancelWith(order, "reservation_expired", now),
    };

    public static SagaTransition Compensated(Order order, bool refunded, DateTimeOffset now) =>
        Apply(() => order.Cancel(refunded, now), SagaStep.Done,
            new SagaEvent(OrderEvents.Cancelled, new OrderCancelledData(order.Id, order.CancellationReason!, order.ReservationId, refunded)));

    /// <summary>A step that must eventually succeed (confirm, compensate) waits and tries again, at most the capped delay apart.</summary>
    public static SagaTransition MustRetry(SagaStep step, int attempts, string error, SagaOptions options) =>
        SagaTransition.Retry(step, options.RetryDelay(attempts), error);

    private static SagaTransition Fail(Order order, string reason, DateTimeOffset now) =>
        Apply(() => order.Fail(reason, now), SagaStep.Done,
            new SagaEvent(OrderEvents.Failed, new OrderFailedData(order.Id, reason, order.ReservationId)));

    private static SagaTransition CancelWith(Order order, string reason, DateTimeOffset now)
    {
        order.RequestCancellation(reason, now);
        return new SagaTransition(SagaStep.Compensate);
    }

    /// <summary>A reservation made for an order that is being cancelled is kept on the order, so compensation releases it.</summary>
    private static SagaTransition Compensate(Order order, Guid reservationId)
    {
        order.AttachReservation(reservationId);
        return new SagaTransition(SagaStep.Compensate);
    }

    private static SagaTransition Apply(Action change, SagaStep next, SagaEvent? raised = null)
    {
        change();
        return new SagaTransition(next, null, raised);
    }
}
