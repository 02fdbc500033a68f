using System.Reflection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Shop.Inventory.Products;
using StackExchange.Redis;

namespace Shop.Tests.Unit;

public sealed class ProductCacheTests
{
    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    /// <summary>
    /// Redis paused or behind a network that drops packets: the connection stays up and no command is ever answered.
    /// StackExchange.Redis 1.x gives awaited commands no timeout, so before, a product read and a product write (which
    /// holds its row lock and transaction meanwhile) waited for as long as the stall lasted.
    /// </summary>
    [Fact]
    public async Task A_redis_that_never_answers_sends_a_read_to_the_database_and_refuses_a_write_after_the_budget()
    {
        var near = new NearCache<NearProduct>(TimeProvider.System, TimeSpan.Zero, TimeSpan.FromMinutes(1), 100);
        var invalidations = new ProductInvalidations(near, "127.0.0.1:1", TimeProvider.System, NullLogger<ProductInvalidations>.Instance);
        var cache = new ProductCache(StalledRedis.Create(), near, invalidations,
            Options.Create(new ProductCacheOptions { RedisTimeoutMilliseconds = 200 }), TimeProvider.System, NullLogger<ProductCache>.Instance);
        var product = new CachedProduct(Guid.NewGuid(), "demo", "SKU-1", "Mug", "", 9.99m, "EUR", true, 2, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch);

        var read = cache.GetAsync(product.Id).AsTask();
        var invalidated = cache.InvalidateBeforeWriteAsync(product.Id, 2);
        var written = cache.WrittenAsync(product);
        var adjusted = cache.AvailabilityChangedAsync(product.Id, 3);
        var all = Task.WhenAll(read, invalidated, written, adjusted);

        // The budget is 200 ms; the rest of the 10 s only absorbs a loaded machine.
        Assert.Same(all, await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(10), Cancellation)));
        Assert.Null((await read).Product);
        Assert.False(await invalidated);
    }

    /// <summary>A multiplexer whose database answers nothing: every command's task stays pending.</summary>
    public class StalledRedis : DispatchProxy
    {
        public static IConnectionMultiplexer Create()
        {
            var database = DispatchProxy.Create<IDatabase, StalledRedis>();
            var multiplexer = DispatchProxy.Create<IConnectionMultiplexer, StalledRedis>();
            ((StalledRedis)(object)multiplexer)._database = database;
            return multiplexer;
        }

        private IDatabase? _database;

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            var returns = targetMethod!.ReturnType;
            if (returns == typeof(IDatabase))
            {
                return _database;
            }

            if (returns.IsGenericType && returns.GetGenericTypeDefinition() == typeof(Task<>))
            {
                var pending = Activator.CreateInstance(typeof(TaskCompletionSource<>).MakeGenericType(returns.GetGenericArguments()))!;
                return pending.GetType().GetProperty(nameof(TaskCompletionSource<int>.Task))!.GetValue(pending);
            }

            return returns == typeof(Task) ? new TaskCompletionSource().Task
                : returns.IsValueType ? Activator.CreateInstance(returns) : null;
        }
    }
}
