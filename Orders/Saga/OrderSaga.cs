using System.Diagnostics;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using OpenTelemetry;
using Polly.CircuitBreaker;
using Polly.Timeout;
using Shop.Orders.Orders;
using Shop.ServiceDefaults.Correlation;
using Shop.ServiceDefaults.Messaging;

namespace Shop.Orders.Saga;

/// <summary>A saga this replica held was taken over (its lease ran out): it stops without committing.</summary>
public sealed class SagaLeaseLostException(Guid orderId) : Exception($"The lease on the saga of order {orderId} was lost.");

/// <summary>A step failed with an error the saga does not handle; it has been logged, and the saga is tried again later.</summary>
public sealed class SagaStepFailedException(Guid orderId, SagaStep step, Exception inner)
    : Exception($"The saga of order {orderId} failed at {step}: {inner.Message}", inner);

/// <summary>
/// A saga claimed by one replica: only the holder of <see cref="LeaseToken"/> may commit its progress.
/// </summary>
public sealed record SagaClaim(Guid OrderId, string TenantId, string Step, int Attempts, Guid LeaseToken);

/// <summary>
/// Drives one order's saga from the step it is at until it ends or has to wait. Each step calls one remote,
/// idempotent operation, then commits in one transaction: the order's change, its event in the outbox and the
/// saga's next step, fenced by the lease. When the order changed meanwhile (a cancellation), the commit loses
/// on the order's version and the step is decided again on the fresh order.
/// </summary>
public sealed class OrderSaga(
    OrdersDbContext db,
    InventoryClient inventory,
    IPaymentProvider payments,
    IOptions<SagaOptions> options,
    TimeProvider clock,
    ILogger<OrderSaga> logger)
{
    private const int MaxVersionConflicts = 10;

    public async Task RunAsync(SagaClaim claim, CancellationToken cancellationToken)
    {
        var step = Enum.Parse<SagaStep>(claim.Step);
        var attempts = claim.Attempts;
        var conflicts = 0;
        var lostCommit = false;
        while (step != SagaStep.Done)
        {
            // Read again before every step: a cancellation that came while the last one ran redirects the saga to the
            // request that cancelled, and what is left (the compensation) is that request's work. The read itself is
            // in no trace yet: it would be one of its own.
            SagaRequest request;
            using (SuppressInstrumentationScope.Begin())
            {
                request = await RequestAsync(claim.OrderId, cancellationToken);
            }

            CorrelationContext.Current = request.CorrelationId;
            using var logScope = logger.BeginScope(new Dictionary<string, object?> { [CorrelationContext.LogScopeKey] = request.CorrelationId });
            using var activity = SagaTrace.Start(step, claim.OrderId, request, attempts + 1);
            Order? order = null;
            SagaTransition transition;
            try
            {
                db.ChangeTracker.Clear();
                order = await db.Orders.SingleAsync(o => o.Id == claim.OrderId, cancellationToken);
                transition = await StepAsync(step, order, attempts + 1, lostCommit, cancellationToken);
                await CommitAsync(claim, order, transition, attempts + 1, cancellationToken);
            }
            catch (DbUpdateConcurrencyException) when (++conflicts <= MaxVersionConflicts)
            {
                logger.LogInformation("Order {OrderId} changed during step {Step}; deciding again", claim.OrderId, step);
                activity?.AddEvent(new ActivityEvent("order changed; deciding again"));
                // Only a reservation Inventory made is worth asking for again.
                lostCommit = step == SagaStep.Reserve && order?.ReservationId is not null;
                continue;
            }
            catch (Exception ex)
            {
                activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
                if (ex is SagaLeaseLostException or OperationCanceledException)
                {
                    throw;
                }

                // Logged here, in the step's correlation and span; the worker hands the saga back.
                logger.LogError(ex, "Saga of order {OrderId} failed at {Step}; it will be tried again", claim.OrderId, step);
                throw new SagaStepFailedException(claim.OrderId, step, ex);
            }

            lostCommit = false;
            activity?.SetTag("shop.saga.next", transition.Next.ToString());

            if (transition.RetryAfter is { } delay)
            {
                activity?.SetStatus(ActivityStatusCode.Error, transition.Error);
                logger.LogWarning("Saga of order {OrderId}: {Step} failed (attempt {Attempt}), retrying in {Delay}: {Error}",
                    order.Id, step, attempts + 1, delay, transition.Error);
                return;
            }

            logger.LogInformation("Saga of order {OrderId}: {Step} → {Next} (order {Status})", order.Id, step, transition.Next, order.Status);
            step = transition.Next;
            attempts = 0;
        }
    }

    private async Task<SagaRequest> RequestAsync(Guid orderId, CancellationToken cancellationToken) =>
        await db.Database.SqlQuery<SagaRequest>(
                $"""SELECT correlation_id AS "CorrelationId", traceparent AS "TraceParent" FROM order_sagas WHERE order_id = {orderId}""")
            .SingleAsync(cancellationToken);

    /// <param name="afterLostCommit">The step's call was made, but its commit lost to a change of the order (a cancellation).</param>
    private async Task<SagaTransition> StepAsync(SagaStep step, Order order, int attempt, bool afterLostCommit, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var now = clock.GetUtcNow();
        // A cancellation skips the steps still to come. A reservation, though, may already be Inventory's when the
        // cancellation came while the call was out: the call is made again (per order, so Inventory answers the
        // reservation it made) to keep it on the order, and compensation releases it. Skipped, the units stayed held
        // until order.cancelled reached Inventory, or the reservation expired.
        var askAgain = afterLostCommit && step == SagaStep.Reserve && order.Status == OrderStatus.Pending && order.ReservationId is null;
        if (order.CancellationRequested && step is SagaStep.Reserve or SagaStep.Pay or SagaStep.Confirm && !askAgain)
        {
            return new SagaTransition(SagaStep.Compensate);
        }

        try
        {
            switch (step)
            {
                case SagaStep.Reserve:
                    var lines = order.Lines.Select(l => new ReservationLine(l.ProductId, l.Quantity)).ToList();
                    return SagaTransitions.Reserved(order, await inventory.ReserveAsync(order.Id, lines, cancellationToken), clock.GetUtcNow());
                case SagaStep.Pay:
                    return SagaTransitions.Authorized(order, await payments.AuthorizeAsync(order.Id, order.Total, order.Currency, cancellationToken), clock.GetUtcNow());
                case SagaStep.Confirm:
                    return SagaTransitions.Confirmed(order, await inventory.ConfirmAsync(order.ReservationId!.Value, cancellationToken), clock.GetUtcNow());
                case SagaStep.Compensate:
                    // The refund goes first: money back matters more than stock, and both are repeatable.
                    var refunded = order.ReservationId is not null && await payments.RefundAsync(order.Id, cancellationToken);
                    if (order.ReservationId is { } reservationId)
                    {
                        await inventory.ReleaseAsync(reservationId, cancellationToken);
                    }

                    return SagaTransitions.Compensated(order, refunded, clock.GetUtcNow());
                default:
                    throw new InvalidOperationException($"No step {step}.");
            }
        }
        catch (Exception ex) when (IsUnavailable(ex, cancellationToken))
        {
            var error = $"{ex.GetType().Name}: {ex.Message}";
            return step switch
            {
                // Asked again for a cancelled order's reservation: cancel without it (Inventory releases it on order.cancelled).
                SagaStep.Reserve when order.CancellationRequested => new SagaTransition(SagaStep.Compensate),
                SagaStep.Reserve => SagaTransitions.ReserveUnavailable(order, attempt, error, settings, now),
                SagaStep.Pay => SagaTransitions.PaymentUnavailable(order, attempt, error, settings, now),
                _ => SagaTransitions.MustRetry(step, attempt, error, settings),
            };
        }
    }

    private async Task CommitAsync(SagaClaim claim, Order order, SagaTransition transition, int attempt, CancellationToken cancellationToken)
    {
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        if (transition.Event is { } raised)
        {
            db.AddEvent(OrderEvents.Exchange, raised.Type, 1, order.TenantId, order.Id.ToString(), order.Version, raised.Data, clock);
        }

        await db.SaveChangesAsync(cancellationToken);
        var retrying = transition.RetryAfter is not null;
        var nextAttemptAt = clock.GetUtcNow() + (transition.RetryAfter ?? TimeSpan.Zero);
        var step = transition.Next.ToString();
        var attempts = retrying ? attempt : 0;
        // Waiting or done gives the saga up; moving on keeps it, so this replica carries straight on.
        var fenced = await db.Database.ExecuteSqlInterpolatedAsync($"""
            UPDATE order_sagas
            SET step = {step}, attempts = {attempts}, next_attempt_at = {nextAttemptAt}, last_error = {transition.Error},
                lease_token = CASE WHEN {retrying} OR {step} = 'Done' THEN NULL ELSE lease_token END,
                lease_until = CASE WHEN {retrying} OR {step} = 'Done' THEN NULL
                                   ELSE now() + make_interval(secs => {options.Value.LeaseSeconds}) END,
                updated_at = now()
            WHERE order_id = {claim.OrderId} AND lease_token = {claim.LeaseToken}
            """, cancellationToken);
        if (fenced == 0)
        {
            throw new SagaLeaseLostException(claim.OrderId);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    private static bool IsUnavailable(Exception ex, CancellationToken cancellationToken) => ex switch
    {
        OperationCanceledException when cancellationToken.IsCancellationRequested => false,
        HttpRequestException or TimeoutRejectedException or BrokenCircuitException or PaymentProviderUnavailableException => true,
        OperationCanceledException => true, // a timeout of the HTTP client itself
        _ => false,
    };
}
