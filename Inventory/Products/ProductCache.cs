using System.Diagnostics.Metrics;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Telemetry;
using StackExchange.Redis;

namespace Shop.Inventory.Products;

/// <summary>
/// Cache-aside for single products in two tiers: each replica's memory (<see cref="NearCache{TValue}"/>) in front of
/// Redis, shared by every replica. Every fill carries the product's version and goes through one script that refuses
/// older versions and versions under the product's floor; memory is filled only with what that script accepted.
/// <para>
/// A product write invalidates before it commits (<see cref="InvalidateBeforeWriteAsync"/>): one script raises the floor
/// to the version being written, removes the shared copy and publishes the invalidation to every replica's memory. If
/// Redis cannot be told, the write does not commit (503), so no copy of the old value can outlive it. After the
/// commit the writer stores the new value and waits one lease (<see cref="ProductInvalidations"/>), by when no replica
/// serves from memory what it held before. So once an update has returned, no replica serves the value before it,
/// whatever failed on the way. Redis being down costs the cache and product writes, not the reads.
/// </para>
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

    /// <summary>How long any Redis call here is waited for (see <see cref="RedisExtensions.WithinAsync{T}"/>); then the cache is skipped.</summary>
    private TimeSpan Budget => TimeSpan.FromMilliseconds(options.Value.RedisTimeoutMilliseconds);
    private static readonly Counter<long> Reads = ShopDiagnostics.Meter.CreateCounter<long>(
        "shop.inventory.product_cache.reads", description: "Single-product reads by where they were answered: memory, redis or database.");

    /// <summary>Stores a version no older than the cached one and the floor; a version under the floor is answered with the floor.</summary>
    private const string SetIfNotOlder = """
        local version = tonumber(ARGV[1])
        local floor = redis.call('GET', KEYS[2])
        if floor and version < tonumber(string.match(floor, '^(%d+)')) then return 'floor ' .. redis.call('PTTL', KEYS[2]) .. ' ' .. floor end
        local current = redis.call('GET', KEYS[1])
        if current then
            local cached = tonumber(string.match(current, '^(%d+)|'))
            if cached and cached > version then return 'older' end
        end
        redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
        return 'stored'
        """;

    /// <summary>Availability read at a stock version under the last adjustment's is not kept: a read from before it may land late.</summary>
    private const string FillAvailabilityIfCurrent = """
        if tonumber(ARGV[2]) < tonumber(redis.call('GET', KEYS[2]) or '0') then return 0 end
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
        return 1
        """;

    /// <summary>
    /// A product write, before it commits: no version under ARGV[1] can be cached again under KEYS[1], none is, and every
    /// replica hears of it (ARGV[4] on the channel ARGV[3]) in the same step. The floor is stored as "version:nonce" with
    /// the writer's own nonce (ARGV[5]), so that a floor left above the committed version by a write that never committed
    /// can be lowered only while it is still that write's (see <see cref="SettleFloor"/>).
    /// </summary>
    private const string RaiseProductFloor = """
        local current = redis.call('GET', KEYS[2])
        local floor = current and string.match(current, '^(%d+)') or '0'
        local version = ARGV[1]
        if tonumber(floor) > tonumber(version) then version = floor end
        redis.call('SET', KEYS[2], version .. ':' .. ARGV[5], 'PX', ARGV[2])
        redis.call('DEL', KEYS[1])
        redis.call('PUBLISH', ARGV[3], ARGV[4])
        return 1
        """;

    /// <summary>The floor ARGV[1] (exactly, nonce included) becomes ARGV[2]; any other floor, raised since, stays.</summary>
    private const string SettleFloor = """
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
        return 1
        """;

    /// <summary>
    /// No version under ARGV[1] can be cached again under KEYS[1], none is, and every replica hears of it (ARGV[4] on the
    /// channel ARGV[3]) in the same step. A stock adjustment runs it after it commits.
    /// </summary>
    private const string RaiseFloor = """
        local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
        if tonumber(ARGV[1]) > floor then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) end
        redis.call('DEL', KEYS[1])
        redis.call('PUBLISH', ARGV[3], ARGV[4])
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
            var values = await redis.GetDatabase().StringGetAsync([Key(id), AvailableKey(id)]).WithinAsync(Budget, clock);
            var value = (string?)values[0];
            var separator = value?.IndexOf('|', StringComparison.Ordinal) ?? -1;
            // Redis may have let its copy expire while memory still holds one: that copy is served, but its own expiry stands.
            var heldCopy = separator < 0;
            var product = heldCopy
                ? held?.Product
                : JsonSerializer.Deserialize<CachedProduct>(value.AsSpan(separator + 1), JsonSerializerOptions.Web);
            // A copy without the product's times was cached by a replica from before they were served: a miss, which the
            // database read that follows replaces with a whole copy.
            if (product is null || product.CreatedAt == default)
            {
                return new CachedRead(null, null, generation);
            }

            Reads.Add(1, new KeyValuePair<string, object?>("source", "redis"));
            var (available, until) = ParseAvailability((string?)values[1]);
            near.Fill(generation, id, new NearProduct(product, available, until), renew: !heldCopy);
            return new CachedRead(product, available, generation, heldCopy);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Product cache read failed; reading the database");
            return new CachedRead(null, null, generation, RedisFailed: true);
        }
    }

    /// <summary>When a database read began: the availability it returns may be served for the TTL counted from then.</summary>
    public ReadStamp Stamp() => new(clock.GetTimestamp(), clock.GetUtcNow().ToUnixTimeMilliseconds());

    /// <summary>
    /// After a database read: the product and its availability, in memory and in Redis (not awaited for availability).
    /// Returns the product's floor when it refused the product's version and was raised long enough ago
    /// (<see cref="FloorSettlingAge"/>) that the write which raised it should have committed by now: it may never
    /// commit (see <see cref="SettleFloorAsync"/>). A floor raised moments ago is a write on its way.
    /// </summary>
    /// <param name="again">A second fill after the floor was settled: the database read was counted once already.</param>
    public async Task<string?> FillAsync(CachedRead read, CachedProduct product, int available, long stockVersion, ReadStamp readAt, bool again = false)
    {
        if (!again)
        {
            Reads.Add(1, new KeyValuePair<string, object?>("source", "database"));
        }

        if (read.RedisFailed)
        {
            // Redis just failed or stalled for this read: the fill would likely wait out a second budget for nothing.
            return null;
        }

        // A row read just before a write's floor went up is not kept anywhere, memory included.
        var answer = await SetAsync(product.Id, product.Version, JsonSerializer.Serialize(product, JsonSerializerOptions.Web));
        if (answer == "stored")
        {
            FillAvailability(read, product, available, stockVersion, readAt);
        }

        // "floor <milliseconds left> <floor>"
        if (answer?.Split(' ') is ["floor", var left, var floor] && long.TryParse(left, System.Globalization.CultureInfo.InvariantCulture, out var pttl)
            && FloorTtl - TimeSpan.FromMilliseconds(pttl) >= FloorSettlingAge)
        {
            return floor;
        }

        return null;
    }

    /// <summary>
    /// How old a floor must be before a read tries to settle it: longer than a write holds its row between raising the
    /// floor and committing (a lease and a commit, well under a second), so an ordinary write is not second-guessed.
    /// A write that takes longer still holds its row, and the settlement leaves it alone.
    /// </summary>
    private static readonly TimeSpan FloorSettlingAge = TimeSpan.FromSeconds(5);

    /// <summary>The version a floor (<c>version</c> or <c>version:nonce</c>) refuses everything under.</summary>
    public static long FloorVersion(string floor) =>
        long.Parse(floor.AsSpan(0, floor.IndexOf(':') is var colon and >= 0 ? colon : floor.Length), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// Lowers the product's floor from <paramref name="floor"/>, exactly as it was read, to <paramref name="committedVersion"/>.
    /// The caller holds a lock on the product's row that no writer holds between raising its floor and committing, and has
    /// read the committed version under it: a floor above that was left by a write that did not commit (refused after
    /// Redis stalled, its transaction lost), and it kept every replica reading the product from the database for a day.
    /// A write that raised the floor since has a nonce of its own, so a late run of this script leaves its floor alone.
    /// </summary>
    public async Task<bool> SettleFloorAsync(Guid id, string floor, long committedVersion)
    {
        try
        {
            return (int)await redis.GetDatabase().ScriptEvaluateAsync(SettleFloor, [FloorKey(id)],
                [floor, committedVersion, (long)FloorTtl.TotalMilliseconds]).WithinAsync(Budget, clock) == 1;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Product {ProductId}'s cache floor could not be settled", id);
            return false;
        }
    }

    /// <summary>
    /// Keeps a product's availability, read from the database at <paramref name="stockVersion"/> by a read that began at
    /// <paramref name="readAt"/>, for what is left of the TTL. In Redis only if no adjustment has committed since that read
    /// (the fill is not awaited, so it may arrive after one).
    /// </summary>
    public void FillAvailability(CachedRead read, CachedProduct product, int available, long stockVersion, ReadStamp readAt)
    {
        var ttl = options.Value.AvailabilityTtlMilliseconds;
        if (ttl == 0)
        {
            return;
        }

        near.Fill(read.Generation, product.Id, new NearProduct(product, available, readAt.Timestamp + ttl * clock.TimestampFrequency / 1000),
            renew: !read.HeldCopy);
        try
        {
            redis.GetDatabase().ScriptEvaluate(FillAvailabilityIfCurrent, [AvailableKey(product.Id), AvailableFloorKey(product.Id)],
                [SharedAvailability.Format(available, readAt.UnixMilliseconds), stockVersion, ttl], CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Availability cache fill failed");
        }
    }

    /// <summary>
    /// After a committed stock adjustment, which left the stock at <paramref name="stockVersion"/>: the next product read, on
    /// any replica, takes availability from the database, and no read from before the adjustment is kept in Redis.
    /// </summary>
    public async Task AvailabilityChangedAsync(Guid id, long stockVersion)
    {
        try
        {
            await redis.GetDatabase().ScriptEvaluateAsync(RaiseFloor, [AvailableKey(id), AvailableFloorKey(id)],
                [stockVersion, (long)FloorTtl.TotalMilliseconds, ProductInvalidations.Channel, id.ToString("N")]).WithinAsync(Budget, clock);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // The adjustment has committed. Replicas keep availability only for what is left of its TTL since it was read,
            // as they do after a reservation.
            logger.LogWarning(ex, "Availability cache removal failed for {ProductId}; product reads may show the old availability for up to {Ttl} ms",
                id, options.Value.AvailabilityTtlMilliseconds);
        }

        await invalidations.WaitForEveryReplicaAsync();
    }

    /// <summary>Availability from Redis, kept in memory only for what is left of its TTL since it was read from the database.</summary>
    private (int? Available, long Until) ParseAvailability(string? value) =>
        SharedAvailability.Parse(value, clock.GetUtcNow().ToUnixTimeMilliseconds(), options.Value.AvailabilityTtlMilliseconds) is { } shared
            ? (shared.Available, clock.GetTimestamp() + shared.MillisecondsLeft * clock.TimestampFrequency / 1000)
            : (null, 0);

    /// <summary>
    /// Before a product write commits, in its transaction: raises the product's floor to <paramref name="version"/>, removes
    /// the shared copy and tells every replica to drop its own. False when Redis could not be told; the write must then
    /// not commit, or a copy of the old value could be served after it.
    /// </summary>
    public async Task<bool> InvalidateBeforeWriteAsync(Guid id, long version)
    {
        try
        {
            // A script that runs after its wait ran out does no harm: it only raises the floor, removes and tells.
            await redis.GetDatabase().ScriptEvaluateAsync(RaiseProductFloor, [Key(id), FloorKey(id)],
                [version, (long)FloorTtl.TotalMilliseconds, ProductInvalidations.Channel, id.ToString("N"), Guid.NewGuid().ToString("N")])
                .WithinAsync(Budget, clock);
            return true;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Product {ProductId} could not be invalidated before its write to v{Version}; the write is refused", id, version);
            return false;
        }
    }

    /// <summary>After the write has committed: the new value for the next reader, then one lease, by when no replica serves the old one.</summary>
    public async Task WrittenAsync(CachedProduct product)
    {
        await SetAsync(product.Id, product.Version, JsonSerializer.Serialize(product, JsonSerializerOptions.Web));
        await invalidations.WaitForEveryReplicaAsync();
    }

    /// <summary>After a delete has committed: one lease, by when no replica serves the product.</summary>
    public Task DeletedAsync() => invalidations.WaitForEveryReplicaAsync();

    /// <summary>
    /// Stores a version no older than the cached one and the floor. The script's answer: <c>stored</c>, <c>older</c>, or
    /// <c>floor {floor}</c>; null when Redis failed.
    /// </summary>
    private async Task<string?> SetAsync(Guid id, long version, string payload)
    {
        try
        {
            return (string?)await redis.GetDatabase().ScriptEvaluateAsync(SetIfNotOlder, [Key(id), FloorKey(id)],
                [version, payload, (long)Ttl.TotalMilliseconds]).WithinAsync(Budget, clock);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Product cache fill failed");
            return null;
        }
    }

    private static string Key(Guid id) => $"product:{id:N}";

    private static string FloorKey(Guid id) => $"product:{id:N}:floor";

    private static string AvailableKey(Guid id) => $"product:{id:N}:available";

    private static string AvailableFloorKey(Guid id) => $"product:{id:N}:available:floor";
}

/// <summary>What the cache knew: the product (null on a miss), its availability if still fresh, and the read's generation.</summary>
/// <param name="HeldCopy">The product is this replica's own copy from memory, which Redis no longer had.</param>
/// <param name="RedisFailed">Redis failed or did not answer within its budget: the database's answer is not cached.</param>
public readonly record struct CachedRead(CachedProduct? Product, int? Available, long Generation, bool HeldCopy = false, bool RedisFailed = false);

/// <summary>When a database read began, on this process's monotonic clock and as Unix milliseconds.</summary>
public readonly record struct ReadStamp(long Timestamp, long UnixMilliseconds);

public sealed record CachedProduct(Guid Id, string TenantId, string Sku, string Name, string Description, decimal Amount, string Currency, bool Active, long Version,
    DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);

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

    /// <summary>
    /// How long a Redis call of the cache is waited for. Past it a read goes to the database and a product write is
    /// refused (503), as when Redis is down, instead of waiting on a Redis that stalls.
    /// </summary>
    [System.ComponentModel.DataAnnotations.Range(1, 10_000)]
    public int RedisTimeoutMilliseconds { get; set; } = 500;
}
