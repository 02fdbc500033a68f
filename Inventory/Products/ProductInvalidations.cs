using Shop.ServiceDefaults.Caching;

namespace Shop.Inventory.Products;

/// <summary>
/// Keeps this replica's <see cref="NearCache{TValue}"/> honest: applies every product invalidation published by any
/// replica, holds the lease (<see cref="LeasedSubscription"/>), and makes a writer wait one lease after publishing, by
/// when no replica that missed the invalidation can still serve from memory.
/// </summary>
/// <remarks>
/// Writers wait the whole lease rather than for acknowledgements: PUBLISH counts only the subscriptions Redis still
/// holds, so a replica whose connection Redis has dropped, but which has not noticed yet, would be counted by nobody
/// while its lease ran. Only product writes and stock adjustments (admin calls) pay this wait.
/// </remarks>
public sealed class ProductInvalidations(
    NearCache<NearProduct> near, string redisConnectionString, TimeProvider clock, ILogger<ProductInvalidations> logger)
    : LeasedSubscription(redisConnectionString, Channel, near.Lease, clock, logger)
{
    public const string Channel = "inventory:product-invalidations";

    /// <summary>
    /// After an invalidation reached Redis (product writes and stock adjustments publish it in their floor script): returns
    /// once no replica can still serve from memory what it held before.
    /// </summary>
    public Task WaitForEveryReplicaAsync() => near.Enabled ? WaitOneLeaseAsync() : Task.CompletedTask;

    protected override string What => "Product invalidation";

    protected override Task OnSubscribedAsync(CancellationToken cancellationToken)
    {
        // Whatever was held before this subscription existed may have missed invalidations.
        near.Reset();
        return Task.CompletedTask;
    }

    protected override void OnMessage(string payload)
    {
        if (Guid.TryParseExact(payload, "N", out var productId))
        {
            near.Invalidate(productId);
        }
        else
        {
            Logger.LogWarning("Ignored a malformed product invalidation");
        }
    }

    protected override void OnConfirmed(long sentAt) => near.Confirmed(sentAt);

    protected override void OnLost() => near.Reset();
}

/// <summary>A product held in memory with its availability, which may be served until <see cref="AvailableUntil"/>.</summary>
public sealed record NearProduct(CachedProduct Product, int? Available, long AvailableUntil);
