using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Shop.ServiceDefaults.Telemetry;
using StackExchange.Redis;

namespace Shop.Inventory.Products;

/// <summary>
/// Cache-aside for single products in two tiers: each replica's memory (<see cref="NearCache{TValue}"/>) in front of
/// Redis, shared by every replica. Every write to Redis carries the product's version and goes through one script that
/// refuses older versions, and a product write also raises a version floor, so no replica re-caches the value before
/// an update, even a reader that fetched the old row just before it. A write then invalidates every replica's memory
/// and returns only once none of them can serve the old value (<see cref="ProductInvalidations"/>). So once an update
/// has returned, no replica serves the value before it. Redis being down costs the cache, not the reads.
/// <para>
/// Availability changes with every reservation, so it is not kept with the product: it is cached on its own for
/// <see cref="ProductCacheOptions.AvailabilityTtlMilliseconds"/> (one second by default) from the moment it was read
/// from the database, and an admin's stock adjustment removes it. A product read may show availability up to that
/// old; a reservation never relies on it (it checks stock in its own statement), and <c>GET /v1/inventory/{id}</c>
/// always reads the database.
/// </para>
/// </summary>
public sealed class ProductCache(IConnectionMultiplexer redis, NearCache<NearProduct> near, ProductInvalidations invalidations,
    IOptions<ProductCacheOptions> options, TimeProvider clock, ILogger<ProductCache> logger)
{
    private static readonly TimeSpan Ttl = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan FloorTtl = TimeSpan.FromDays(1);
    private static readonly Counter<long> Reads = ShopDiagnostics.Meter.CreateCounter<long>(
        "shop.inventory.product_cache.reads", description: "Single-product reads by where they were answered: memory, redis or database.");

    private const string SetIfNotOlder = """
        local version = tonumber(ARGV[1])
        local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
        if version < floor then return 0 end
        local current = redis.call('GET', KEYS[1])
        if current then
            local cached = tonumber(string.match(current, '^(%d+)|'))
            if cached and cached > version then return 0 end
        end
        if ARGV[4] == '1' then redis.call('SET', KEYS[2], version, 'PX', ARGV[5]) end
        if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3]) end
        return 1
        """;

    /// <summary>
    /// The cached product and, when cached too, its availability: from memory, or in one round trip to Redis. The read's
    /// generation goes back with a fill, so a value read before an invalidation is never kept after it.
    /// </summary>
    public ValueTask<CachedRead> GetAsync(Guid id)
    {
        var generation = near.Generation;
        if (near.TryGet(id, out var held) && held.Available is { } available && clock.GetTimestamp() < held.AvailableUntil)
        {
            Reads.Add(1, new KeyValuePair<string, object?>("source", "memory"));
            return ValueTask.FromResult(new CachedRead(held.Product, available, generation));
        }

        return new ValueTask<CachedRead>(GetSharedAsync(id, held, generation));
    }

    private async Task<CachedRead> GetSharedAsync(Guid id, NearProduct? held, long generation)
    {
        try
        {
            var values = await redis.GetDatabase().StringGetAsync([Key(id), AvailableKey(id)]);
            var value = (string?)values[0];
            var separator = value?.IndexOf('|', StringComparison.Ordinal) ?? -1;
            var product = separator < 0
                ? held?.Product
                : JsonSerializer.Deserialize<CachedProduct>(value.AsSpan(separator + 1), JsonSerializerOptions.Web);
            if (product is null)
            {
                return new CachedRead(null, null, generation);
            }

            Reads.Add(1, new KeyValuePair<string, object?>("source", "redis"));
            var (available, until) = ParseAvailability((string?)values[1]);
            near.Fill(generation, id, new NearProduct(product, available, until));
            return new CachedRead(product, available, generation);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Product cache read failed; reading the database");
            return new CachedRead(null, null, generation);
        }
    }

    /// <summary>After a database read: the product and its availability, in memory and in Redis (not awaited for availability).</summary>
    public async Task FillAsync(CachedRead read, CachedProduct product, int available)
    {
        Reads.Add(1, new KeyValuePair<string, object?>("source", "database"));
        await SetAsync(product.Id, product.Version, JsonSerializer.Serialize(product, JsonSerializerOptions.Web), isWrite: false);
        FillAvailability(read, product, available);
    }

    /// <summary>Keeps a product's availability, just read from the database, for a short while.</summary>
    public void FillAvailability(CachedRead read, CachedProduct product, int available)
    {
        var ttl = options.Value.AvailabilityTtlMilliseconds;
        if (ttl == 0)
        {
            return;
        }

        near.Fill(read.Generation, product.Id, new NearProduct(product, available, clock.GetTimestamp() + ttl * clock.TimestampFrequency / 1000));
        try
        {
            redis.GetDatabase().StringSet(AvailableKey(product.Id), $"{available}:{clock.GetUtcNow().ToUnixTimeMilliseconds()}",
                TimeSpan.FromMilliseconds(ttl), flags: CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Availability cache fill failed");
        }
    }

    /// <summary>After a committed stock adjustment: the next product read, on any replica, takes availability from the database.</summary>
    public async Task AvailabilityChangedAsync(Guid id)
    {
        try
        {
            await redis.GetDatabase().KeyDeleteAsync(AvailableKey(id));
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Availability cache removal failed for {ProductId}; product reads may show the old availability for up to {Ttl} ms",
                id, options.Value.AvailabilityTtlMilliseconds);
        }

        await invalidations.PublishAsync(id);
    }

    /// <summary>"available:read-at" in Redis; kept in memory only for what is left of its TTL since it was read from the database.</summary>
    private (int? Available, long Until) ParseAvailability(string? value)
    {
        var colon = value?.IndexOf(':', StringComparison.Ordinal) ?? -1;
        if (colon < 0
            || !int.TryParse(value.AsSpan(0, colon), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var available)
            || !long.TryParse(value.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var readAt))
        {
            return (null, 0);
        }

        var left = readAt + options.Value.AvailabilityTtlMilliseconds - clock.GetUtcNow().ToUnixTimeMilliseconds();
        return left <= 0 ? (null, 0) : (available, clock.GetTimestamp() + left * clock.TimestampFrequency / 1000);
    }

    /// <summary>After a committed update: the new value, a floor no older version can go under, and no replica's memory holding the old one.</summary>
    public async Task WrittenAsync(CachedProduct product)
    {
        await SetAsync(product.Id, product.Version, JsonSerializer.Serialize(product, JsonSerializerOptions.Web), isWrite: true);
        await invalidations.PublishAsync(product.Id);
    }

    /// <summary>After a committed delete: nothing cached, and no version up to this one can be cached again.</summary>
    public async Task DeletedAsync(Guid id, long version)
    {
        await SetAsync(id, version, "", isWrite: true);
        await invalidations.PublishAsync(id);
    }

    private async Task SetAsync(Guid id, long version, string payload, bool isWrite)
    {
        try
        {
            await redis.GetDatabase().ScriptEvaluateAsync(SetIfNotOlder, [Key(id), $"{Key(id)}:floor"],
                [version, payload, (long)Ttl.TotalMilliseconds, isWrite ? "1" : "0", (long)FloorTtl.TotalMilliseconds]);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // The database write has committed either way. If Redis lost its data, nothing stale is left; if the failure
            // was transient, an older copy may survive until its TTL. That window is logged as an error.
            if (isWrite)
            {
                logger.LogError(ex, "Product cache update failed for {ProductId} v{Version}; a cached copy may be stale for up to {Ttl}", id, version, Ttl);
            }
            else
            {
                logger.LogWarning(ex, "Product cache fill failed");
            }
        }
    }

    private static string Key(Guid id) => $"product:{id:N}";

    private static string AvailableKey(Guid id) => $"product:{id:N}:available";
}

/// <summary>What the cache knew: the product (null on a miss), its availability if still fresh, and the read's generation.</summary>
public readonly record struct CachedRead(CachedProduct? Product, int? Available, long Generation);

public sealed record CachedProduct(Guid Id, string TenantId, string Sku, string Name, string Description, decimal Amount, string Currency, bool Active, long Version);

public sealed class ProductCacheOptions
{
    public const string Section = "ProductCache";

    /// <summary>How long a product read may show an availability it did not read itself; 0 reads it every time.</summary>
    [System.ComponentModel.DataAnnotations.Range(0, 60_000)]
    public int AvailabilityTtlMilliseconds { get; set; } = 1000;

    /// <summary>
    /// How long a replica may serve from memory after its invalidation stream last proved current, and so how long every
    /// product write and stock adjustment waits after publishing its invalidation. 0 turns the in-memory tier off.
    /// </summary>
    [System.ComponentModel.DataAnnotations.Range(0, 10_000)]
    public int NearCacheLeaseMilliseconds { get; set; } = 250;

    /// <summary>The longest a product stays in a replica's memory, whatever happens to invalidations.</summary>
    [System.ComponentModel.DataAnnotations.Range(1, 3600)]
    public int NearCacheEntrySeconds { get; set; } = 60;

    [System.ComponentModel.DataAnnotations.Range(1, 1_000_000)]
    public int NearCacheMaxEntries { get; set; } = 10_000;
}
