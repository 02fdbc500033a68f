using System.ComponentModel.DataAnnotations;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Shop.Orders.Saga;

public sealed class FakePaymentOptions
{
    public const string Section = "Payments:Fake";

    /// <summary>Share of authorizations declined at random (0–1).</summary>
    [Range(0.0, 1.0)]
    public double DeclineRate { get; set; }

    /// <summary>Amounts above this are declined, like a card's limit; makes a decline reproducible.</summary>
    [Range(0.0, 1_000_000_000.0)]
    public decimal CardLimit { get; set; } = 10_000m;

    /// <summary>Delay added to every call, to model a real provider's latency.</summary>
    [Range(0, 60_000)]
    public int LatencyMilliseconds { get; set; } = 20;

    /// <summary>Share of calls that fail as unavailable (0–1), to exercise the saga's retries.</summary>
    [Range(0.0, 1.0)]
    public double FailureRate { get; set; }
}

/// <summary>
/// A provider for development and tests. Its ledger is a table of its own in ordersdb (<c>fake_payments</c>),
/// which stands in for the provider's side: it survives restarts of Orders, which is what makes the saga's
/// retries safe to test. Declines are decided by <see cref="FakePaymentOptions"/>.
/// </summary>
public sealed class FakePaymentProvider(OrdersDbContext db, IOptionsMonitor<FakePaymentOptions> options, TimeProvider clock) : IPaymentProvider
{
    public async Task<PaymentResult> AuthorizeAsync(Guid orderId, decimal amount, string currency, CancellationToken cancellationToken)
    {
        var settings = options.CurrentValue;
        await SimulateNetworkAsync(settings, cancellationToken);

        var declined = amount > settings.CardLimit ? "card_limit_exceeded"
            : Random.Shared.NextDouble() < settings.DeclineRate ? "card_declined"
            : null;
        var paymentId = $"pay_{Guid.CreateVersion7():N}";
        var now = clock.GetUtcNow();
        // First answer wins: a repeat (or a race with a void) reads the row that is there.
        await db.Database.ExecuteSqlInterpolatedAsync($"""
            INSERT INTO fake_payments (order_id, payment_id, amount, currency, status, reason, created_at, updated_at)
            VALUES ({orderId}, {paymentId}, {amount}, {currency}, {(declined is null ? "Authorized" : "Declined")}, {declined}, {now}, {now})
            ON CONFLICT (order_id) DO NOTHING
            """, cancellationToken);
        var row = await db.Database
            .SqlQuery<LedgerRow>($"""SELECT payment_id AS "PaymentId", status AS "Status", reason AS "Reason" FROM fake_payments WHERE order_id = {orderId}""")
            .SingleAsync(cancellationToken);
        return row.Status == "Authorized"
            ? new PaymentResult.Authorized(row.PaymentId)
            : new PaymentResult.Declined(row.Reason ?? row.Status.ToLowerInvariant());
    }

    public async Task<bool> RefundAsync(Guid orderId, CancellationToken cancellationToken)
    {
        await SimulateNetworkAsync(options.CurrentValue, cancellationToken);
        var now = clock.GetUtcNow();
        var refunded = await db.Database.ExecuteSqlInterpolatedAsync(
            $"UPDATE fake_payments SET status = 'Refunded', updated_at = {now} WHERE order_id = {orderId} AND status = 'Authorized'",
            cancellationToken);
        if (refunded == 0)
        {
            // Nothing authorized (yet): void the order so an authorization still in flight is declined.
            await db.Database.ExecuteSqlInterpolatedAsync($"""
                INSERT INTO fake_payments (order_id, payment_id, amount, currency, status, reason, created_at, updated_at)
                VALUES ({orderId}, {"void_" + orderId.ToString("N")}, 0, 'XXX', 'Voided', 'voided', {now}, {now})
                ON CONFLICT (order_id) DO NOTHING
                """, cancellationToken);
        }

        var status = await db.Database.SqlQuery<string>($"SELECT status AS \"Value\" FROM fake_payments WHERE order_id = {orderId}")
            .SingleAsync(cancellationToken);
        return status == "Refunded";
    }

    private async Task SimulateNetworkAsync(FakePaymentOptions settings, CancellationToken cancellationToken)
    {
        if (settings.LatencyMilliseconds > 0)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(settings.LatencyMilliseconds), clock, cancellationToken);
        }

        if (Random.Shared.NextDouble() < settings.FailureRate)
        {
            throw new PaymentProviderUnavailableException("The payment provider did not answer.");
        }
    }

    private sealed record LedgerRow(string PaymentId, string Status, string? Reason);
}
