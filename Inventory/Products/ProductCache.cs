using System.Text.Json;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Shop.Inventory.Products;

/// <summary>
/// Cache-aside for single products in Redis, shared by every replica. Every write to the cache carries the
/// product's version and goes through one script that refuses older versions, and a product write also raises
/// a version floor. So once an update has returned, no replica can serve (or re-cache) the value before it,
/// even a reader that fetched the old row just before the update. Redis being down costs the cache, not the reads.
/// <para>
/// Availability changes with every reservation, so it is not kept with the product: it is cached on its own for
/// <see cref="ProductCacheOptions.AvailabilityTtlMilliseconds"/> (one second by default), and an admin's stock
/// adjustment removes it. A product read may show availability up to that old; a reservation never relies on it
/// (it checks stock in its own statement), and <c>GET /v1/inventory/{id}</c> always reads the database.
/// </para>
/// </summary>
public sealed class ProductCache(IConnectionMultiplexer redis, IOptions<ProductCacheOptions> options, ILogger<ProductCache> logger)
{
    private static readonly TimeSpan Ttl = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan FloorTtl = TimeSpan.FromDays(1);

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

    /// <summary>The cached product and, when cached too, its availability: one round trip to Redis.</summary>
    public async Task<(CachedProduct? Product, int? Available)> GetAsync(Guid id)
    {
        try
        {
            var values = await redis.GetDatabase().StringGetAsync([Key(id), AvailableKey(id)]);
            var value = (string?)values[0];
            var separator = value?.IndexOf('|', StringComparison.Ordinal) ?? -1;
            if (separator < 0)
            {
                return (null, null);
            }

            var product = JsonSerializer.Deserialize<CachedProduct>(value.AsSpan(separator + 1), JsonSerializerOptions.Web);
            return (product, !values[1].IsNull && values[1].TryParse(out int available) ? available : null);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Product cache read failed; reading the database");
            return (null, null);
        }
    }

    /// <summary>Keeps a product's availability for a short while; not awaited (the read has its answer already).</summary>
    public void FillAvailability(Guid id, int available)
    {
        if (options.Value.AvailabilityTtlMilliseconds == 0)
        {
            return;
        }

        try
        {
            redis.GetDatabase().StringSet(AvailableKey(id), available, TimeSpan.FromMilliseconds(options.Value.AvailabilityTtlMilliseconds),
                flags: CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Availability cache fill failed");
        }
    }

    /// <summary>After a committed stock adjustment: the next product read takes availability from the database.</summary>
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
    }

    /// <summary>A reader filling the cache: ignored if a newer version is (or was) cached.</summary>
    public Task FillAsync(CachedProduct product) => SetAsync(product.Id, product.Version, JsonSerializer.Serialize(product, JsonSerializerOptions.Web), isWrite: false);

    /// <summary>After a committed update: the new value, and a floor no older version can go under.</summary>
    public Task WrittenAsync(CachedProduct product) => SetAsync(product.Id, product.Version, JsonSerializer.Serialize(product, JsonSerializerOptions.Web), isWrite: true);

    /// <summary>After a committed delete: nothing cached, and no version up to this one can be cached again.</summary>
    public Task DeletedAsync(Guid id, long version) => SetAsync(id, version, "", isWrite: true);

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

public sealed record CachedProduct(Guid Id, string TenantId, string Sku, string Name, string Description, decimal Amount, string Currency, bool Active, long Version);

public sealed class ProductCacheOptions
{
    public const string Section = "ProductCache";

    /// <summary>How long a product read may show an availability it did not read itself; 0 reads it every time.</summary>
    [System.ComponentModel.DataAnnotations.Range(0, 60_000)]
    public int AvailabilityTtlMilliseconds { get; set; } = 1000;
}
