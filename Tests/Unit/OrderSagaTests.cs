using System.Diagnostics;
using Shop.Orders.Orders;
using Shop.Orders.Saga;
using Shop.ServiceDefaults.Errors;
using Shop.ServiceDefaults.Telemetry;

namespace Shop.Tests.Unit;

/// <summary>The order aggregate's rules and the saga's decisions, without I/O.</summary>
public sealed class OrderSagaTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 22, 9, 0, 0, TimeSpan.Zero);
    private static readonly SagaOptions Options = new() { ReserveAttempts = 3, PaymentAttempts = 2, RetryBaseDelayMilliseconds = 1000, RetryMaxDelayMilliseconds = 5000 };

    private static Order NewOrder() => Order.Place("demo", "customer-1", [(Guid.NewGuid(), 2, 10.5m, "EUR")], Now);

    private static Order PaidOrder()
    {
        var order = NewOrder();
        SagaTransitions.Reserved(order, new ReserveResult.Reserved(Guid.NewGuid()), Now);
        SagaTransitions.Authorized(order, new PaymentResult.Authorized("pay_1"), Now);
        SagaTransitions.Confirmed(order, ReservationChange.Done, Now);
        return order;
    }

    [Fact]
    public void The_happy_path_reserves_pays_and_confirms_raising_one_event_per_status()
    {
        var order = NewOrder();
        var reservationId = Guid.NewGuid();

        var reserved = SagaTransitions.Reserved(order, new ReserveResult.Reserved(reservationId), Now);
        var authorized = SagaTransitions.Authorized(order, new PaymentResult.Authorized("pay_1"), Now);
        var confirmed = SagaTransitions.Confirmed(order, ReservationChange.Done, Now);

        Assert.Equal((SagaStep.Pay, OrderEvents.StockReserved), (reserved.Next, reserved.Event!.Type));
        Assert.Equal((SagaStep.Confirm, null), (authorized.Next, authorized.Event));
        Assert.Equal((SagaStep.Done, OrderEvents.Paid), (confirmed.Next, confirmed.Event!.Type));
        Assert.Equal(OrderStatus.Paid, order.Status);
        Assert.Equal([OrderStatus.Pending, OrderStatus.StockReserved, OrderStatus.Paid], order.History.Select(h => h.Status));
        Assert.Equal(21.0m, order.Total);
        Assert.Equal(4, order.Version);
    }

    [Fact]
    public void Out_of_stock_fails_the_order_with_the_reason()
    {
        var order = NewOrder();

        var transition = SagaTransitions.Reserved(order, new ReserveResult.Refused("out_of_stock", "Not enough stock for x."), Now);

        Assert.Equal(SagaStep.Done, transition.Next);
        Assert.Equal(OrderEvents.Failed, transition.Event!.Type);
        Assert.Equal(OrderStatus.Failed, order.Status);
        Assert.Equal("out_of_stock: Not enough stock for x.", order.StatusReason);
        Assert.Equal("out_of_stock: Not enough stock for x.", ((OrderFailedData)transition.Event.Data).Reason);
    }

    [Fact]
    public void Inventory_unreachable_is_retried_with_growing_delays_then_fails_the_order()
    {
        var order = NewOrder();

        var first = SagaTransitions.ReserveUnavailable(order, 1, "refused", Options, Now);
        var second = SagaTransitions.ReserveUnavailable(order, 2, "refused", Options, Now);
        var last = SagaTransitions.ReserveUnavailable(order, 3, "refused", Options, Now);

        Assert.Equal((SagaStep.Reserve, TimeSpan.FromSeconds(1)), (first.Next, first.RetryAfter!.Value));
        Assert.Equal((SagaStep.Reserve, TimeSpan.FromSeconds(2)), (second.Next, second.RetryAfter!.Value));
        Assert.Null(last.RetryAfter);
        Assert.Equal(OrderEvents.Failed, last.Event!.Type);
        Assert.Equal(OrderStatus.Failed, order.Status);
        Assert.StartsWith("inventory_unavailable", order.StatusReason);
    }

    [Fact]
    public void A_decline_requests_cancellation_and_compensation_cancels_with_that_reason()
    {
        var order = NewOrder();
        var reservationId = Guid.NewGuid();
        SagaTransitions.Reserved(order, new ReserveResult.Reserved(reservationId), Now);

        var declined = SagaTransitions.Authorized(order, new PaymentResult.Declined("card_declined"), Now);
        var compensated = SagaTransitions.Compensated(order, refunded: false, Now);

        Assert.Equal(SagaStep.Compensate, declined.Next);
        Assert.Equal(OrderStatus.Cancelled, order.Status);
        Assert.Equal("payment_declined: card_declined", order.StatusReason);
        var data = (OrderCancelledData)compensated.Event!.Data;
        Assert.Equal((reservationId, false), (data.ReservationId!.Value, data.Refunded));
    }

    [Fact]
    public void An_expired_reservation_at_confirm_time_cancels_and_refunds()
    {
        var order = NewOrder();
        SagaTransitions.Reserved(order, new ReserveResult.Reserved(Guid.NewGuid()), Now);
        SagaTransitions.Authorized(order, new PaymentResult.Authorized("pay_1"), Now);

        var transition = SagaTransitions.Confirmed(order, ReservationChange.Expired, Now);
        SagaTransitions.Compensated(order, refunded: true, Now);

        Assert.Equal(SagaStep.Compensate, transition.Next);
        Assert.Equal(("reservation_expired", true), (order.StatusReason, order.Refunded));
    }

    [Fact]
    public void Confirm_and_compensate_never_give_up_but_wait_at_most_the_capped_delay()
    {
        var transition = SagaTransitions.MustRetry(SagaStep.Compensate, 50, "down", Options);

        Assert.Equal((SagaStep.Compensate, TimeSpan.FromSeconds(5)), (transition.Next, transition.RetryAfter!.Value));
    }

    [Fact]
    public void A_reservation_that_arrives_after_a_cancellation_is_kept_so_compensation_releases_it()
    {
        var order = NewOrder();
        order.RequestCancellation("cancelled_by_customer", Now);
        var reservationId = Guid.NewGuid();

        var transition = SagaTransitions.Reserved(order, new ReserveResult.Reserved(reservationId), Now);

        Assert.Equal(SagaStep.Compensate, transition.Next);
        Assert.Equal(reservationId, order.ReservationId);
        Assert.Equal(OrderStatus.Pending, order.Status);
    }

    [Fact]
    public void The_aggregate_refuses_a_second_payment_shipping_unpaid_and_cancelling_shipped()
    {
        var order = NewOrder();
        Assert.Equal(409, Assert.Throws<DomainException>(() => order.Ship(Now)).StatusCode);
        SagaTransitions.Reserved(order, new ReserveResult.Reserved(Guid.NewGuid()), Now);
        order.RecordPaymentAuthorized("pay_1", Now);
        Assert.Equal(409, Assert.Throws<DomainException>(() => order.RecordPaymentAuthorized("pay_2", Now)).StatusCode);

        var paid = PaidOrder();
        paid.Ship(Now);
        Assert.Equal(OrderStatus.Shipped, paid.Status);
        Assert.Equal(409, Assert.Throws<DomainException>(() => paid.RequestCancellation("cancelled_by_customer", Now)).StatusCode);
    }

    [Fact]
    public void Cancellation_is_idempotent_and_blocks_shipping_while_it_runs()
    {
        var order = PaidOrder();

        Assert.True(order.RequestCancellation("cancelled_by_customer", Now));
        Assert.False(order.RequestCancellation("cancelled_by_admin", Now));
        Assert.Equal(409, Assert.Throws<DomainException>(() => order.Ship(Now)).StatusCode);
        Assert.Equal("cancelled_by_customer", order.CancellationReason);
    }

    [Fact]
    public void An_order_needs_items_in_one_currency()
    {
        Assert.Equal(422, Assert.Throws<DomainException>(() => Order.Place("demo", "c", [], Now)).StatusCode);
        Assert.Equal(422, Assert.Throws<DomainException>(() =>
            Order.Place("demo", "c", [(Guid.NewGuid(), 1, 1m, "EUR"), (Guid.NewGuid(), 1, 1m, "USD")], Now)).StatusCode);
    }

    [Fact]
    public void A_total_the_orders_table_cannot_hold_is_refused_as_422_and_the_largest_it_can_is_placed()
    {
        // 1000 units of a product at Inventory's highest price: each allowed alone, together past numeric(12,2).
        var tooLarge = Assert.Throws<DomainException>(() => Order.Place("demo", "c", [(Guid.NewGuid(), 1000, 10_000_000m, "EUR")], Now));
        Assert.Equal(422, tooLarge.StatusCode);
        Assert.Equal("Order total too large.", tooLarge.Title);

        var largest = Order.Place("demo", "c", [(Guid.NewGuid(), 1, Order.MaxTotal - 0.99m, "EUR"), (Guid.NewGuid(), 1, 0.99m, "EUR")], Now);
        Assert.Equal(Order.MaxTotal, largest.Total);
    }

    [Fact]
    public void A_steps_first_attempt_joins_the_requests_trace_and_a_retry_starts_its_own_linked_to_it()
    {
        var requested = ActivityTraceId.CreateRandom();
        var request = new SagaRequest("corr-1", $"00-{requested}-{ActivitySpanId.CreateRandom()}-01");
        var orderId = Guid.NewGuid();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == ShopDiagnostics.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);

        using (var first = SagaTrace.Start(SagaStep.Pay, orderId, request, attempt: 1))
        {
            Assert.NotNull(first);
            Assert.Equal(("order saga Pay", requested), (first.DisplayName, first.TraceId));
            Assert.Empty(first.Links);
        }

        using (var retry = SagaTrace.Start(SagaStep.Pay, orderId, request, attempt: 2))
        {
            Assert.NotNull(retry);
            Assert.NotEqual(requested, retry.TraceId);
            Assert.Equal(default, retry.ParentSpanId);
            Assert.Equal(requested, Assert.Single(retry.Links).Context.TraceId);
            Assert.Equal(2, retry.GetTagItem("shop.saga.attempt"));
        }

        // Without a trace to carry on (a request that had none), every attempt is a trace of its own.
        using var untraced = SagaTrace.Start(SagaStep.Reserve, orderId, new SagaRequest(null, null), attempt: 3);
        Assert.NotNull(untraced);
        Assert.Equal(default, untraced.ParentSpanId);
        Assert.Empty(untraced.Links);
    }
}
