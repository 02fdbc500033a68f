namespace Shop.Orders.Saga;

// What the saga's remote calls answer: the inputs of SagaTransitions.

public sealed record ReservationLine(Guid ProductId, int Quantity);

public abstract record ReserveResult
{
    public sealed record Reserved(Guid ReservationId) : ReserveResult;

    /// <summary>Inventory said no for good: not enough stock, unknown products, or the order is closed there.</summary>
    public sealed record Refused(string Reason, string Detail) : ReserveResult;
}

public enum ReservationChange { Done, Expired, WrongState, NotFound }

public abstract record PaymentResult
{
    public sealed record Authorized(string PaymentId) : PaymentResult;

    public sealed record Declined(string Reason) : PaymentResult;
}

/// <summary>The provider is unreachable or failed; the call may be repeated (it is idempotent per order).</summary>
public sealed class PaymentProviderUnavailableException(string message) : Exception(message);

/// <summary>
/// A payment provider, idempotent per order: authorizing the same order twice returns the first answer, and a
/// refund (or a void, when nothing was authorized) is final: a later authorization for that order is declined.
/// </summary>
public interface IPaymentProvider
{
    Task<PaymentResult> AuthorizeAsync(Guid orderId, decimal amount, string currency, CancellationToken cancellationToken);

    /// <returns>Whether money had been authorized and is now given back.</returns>
    Task<bool> RefundAsync(Guid orderId, CancellationToken cancellationToken);
}
