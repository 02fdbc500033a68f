using Shop.ServiceDefaults.Caching;
using StackExchange.Redis;

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
    IConnectionMultiplexer redis, NearCache<NearProduct> near, string redisConnectionString, TimeProvider clock, ILogger<ProductInvalidations> logger)
    : LeasedSubscription(redisConnectionString, Channel, near.Lease, clock, logger)
{
    public const string Channel = "inventory:product-invalidations";

    /// <summary>After a committed stock adjustment: returns once no replica can serve the product's old availability from memory.</summary>
    public async Task PublishAsync(Guid productId)
    {
        if (!near.Enabled)
        {
            return;
        }

        try
        {
            await redis.GetSubscriber().PublishAsync(Channel, productId.ToString("N"));
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // Replicas whose subscription is down stop serving within the lease; ones still subscribed never saw this, but
            // keep availability only for what is left of its TTL since it was read, as they do after a reservation.
            Logger.LogWarning(ex, "Product {ProductId} invalidation could not be published; replicas may show its old availability for up to its TTL",
                productId);
        }

        await WaitOneLeaseAsync();
    }

    /// <summary>
    /// After an invalidation reached Redis (a product write publishes it in its floor script, before it commits): returns
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
