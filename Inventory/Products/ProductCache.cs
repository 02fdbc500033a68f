using System.Text.Json;
using StackExchange.Redis;

namespace Shop.Inventory.Products;

/// <summary>
/// Cache-aside for single products in Redis, shared by every replica. Every write to the cache carries the
/// product's version and goes through one script that refuses older versions, and a product write also raises
/// a version floor. So once an update has returned, no replica can serve (or re-cache) the value before it,
/// even a reader that fetched the old row just before the update. Redis being down costs the cache, not the reads.
/// </summary>
public sealed class ProductCache(IConnectionMultiplexer redis, ILogger<ProductCache> logger)
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

    public async Task<CachedProduct?> GetAsync(Guid id)
    {
        try
        {
            var value = (string?)await redis.GetDatabase().StringGetAsync(Key(id));
            var separator = value?.IndexOf('|', StringComparison.Ordinal) ?? -1;
            return separator < 0 ? null : JsonSerializer.Deserialize<CachedProduct>(value![(separator + 1)..], JsonSerializerOptions.Web);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Product cache read failed; reading the database");
            return null;
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
}

public sealed record CachedProduct(Guid Id, string TenantId, string Sku, string Name, string Description, decimal Amount, string Currency, bool Active, long Version);
