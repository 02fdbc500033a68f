using System.Diagnostics;
using Shop.Hosting;

namespace Shop.Tests.Integration;

/// <summary>
/// An application of its own, because these tests break it on purpose: two Orders replicas, a payment provider
/// slow enough that sagas are in flight when a replica dies, and short saga leases so the survivor takes over soon.
/// </summary>
public sealed class ChaosFixture : IAsyncLifetime
{
    public DistributedApplication App { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        App = await AppFixture.StartAsync(
            $"--AppHost:AdminPassword={AppFixture.AdminPassword}",
            "--AppHost:Replicas:orders=2",
            "--AppHost:Environment:orders:Payments__Fake__LatencyMilliseconds=400",
            "--AppHost:Environment:orders:Saga__LeaseSeconds=5",
            "--AppHost:Environment:orders:Saga__RetryMaxDelayMilliseconds=2000");
    }

    public async ValueTask DisposeAsync() => await App.DisposeAsync();
}

[CollectionDefinition(Name)]
public sealed class ChaosCollection : ICollectionFixture<ChaosFixture>
{
    public const string Name = "chaos";
}

[Collection(ChaosCollection.Name)]
public sealed class ChaosTests(ChaosFixture fixture)
{
    private DistributedApplication App => fixture.App;

    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    [Fact]
    public async Task With_RabbitMQ_restarted_during_a_burst_and_an_Orders_replica_killed_mid_saga_every_order_ends_and_every_event_counts_once()
    {
        const int stock = 30;
        const int orderCount = 40;
        var product = await ShopData.CreateProductAsync(App, stock);
        using var registering = new SemaphoreSlim(8);
        var customers = await Task.WhenAll(Enumerable.Range(0, orderCount).Select(async _ =>
        {
            await registering.WaitAsync(Cancellation);
            try
            {
                return (await ShopClients.CustomerAsync(App)).Client;
            }
            finally
            {
                registering.Release();
            }
        }));
        try
        {
            // The first half with the broker up, the second with it stopped: orders are accepted either way.
            var firstHalf = await Task.WhenAll(customers.Take(orderCount / 2).Select(c => ShopData.PlaceOrderAsync(c, product, 1)));
            await App.Orchestrator.StopResourceAsync("messaging");
            var secondHalf = await Task.WhenAll(customers.Skip(orderCount / 2).Select(c => ShopData.PlaceOrderAsync(c, product, 1)));
            var orders = firstHalf.Concat(secondHalf).ToArray();

            // Sagas are in flight (each payment takes 400 ms): kill one Orders replica outright.
            var victim = App.ResourceNotifications.GetSnapshot("orders").Replicas[0];
            var inFlight = await ShopData.ScalarAsync<long>(App, "ordersdb", "SELECT count(*) FROM order_sagas WHERE step <> 'Done'");
            using (var process = Process.GetProcessById(victim.Pid!.Value))
            {
                process.Kill();
            }

            await Task.Delay(TimeSpan.FromSeconds(2), Cancellation);
            await App.Orchestrator.StartResourceAsync("messaging");

            var outcomes = await Task.WhenAll(orders.Select((id, i) =>
                ShopData.WaitForOrderAsync(customers[i], id, TimeSpan.FromMinutes(3), "Paid", "Failed", "Cancelled")));
            var statuses = outcomes.Select(o => o.GetProperty("status").GetString()).ToList();

            Assert.True(inFlight > 0, "No saga was in flight when the replica was killed; the test proved nothing.");
            Assert.Equal(stock, statuses.Count(s => s == "Paid"));
            Assert.Equal(orderCount - stock, statuses.Count(s => s == "Failed"));
            Assert.Equal((0, 0), await ShopData.StockAsync(App, product));
            var ids = $"ARRAY['{string.Join("','", orders)}']";
            Assert.Equal(stock, await ShopData.ScalarAsync<long>(App, "ordersdb",
                $"SELECT count(*) FROM fake_payments WHERE status = 'Authorized' AND order_id = ANY({ids}::uuid[])"));

            // Every event left both outboxes, and every consumer applied each one once.
            await WaitUntilAsync(async () =>
                await ShopData.ScalarAsync<long>(App, "ordersdb", "SELECT count(*) FROM outbox_messages WHERE sent_at IS NULL") == 0
                && await ShopData.ScalarAsync<long>(App, "inventorydb", "SELECT count(*) FROM outbox_messages WHERE sent_at IS NULL") == 0
                && await ShopData.ScalarAsync<long>(App, "notificationsdb",
                    $"SELECT count(*) FROM notifications WHERE kind = 'order-received' AND subject_id = ANY({ids})") == orderCount
                && await ShopData.ScalarAsync<long>(App, "inventorydb",
                    $"SELECT count(*) FROM reservations WHERE closed AND order_id = ANY({ids}::uuid[])") == orderCount - stock);
            var failedEvents = await ShopData.QueryAsync(App, "ordersdb",
                "SELECT event_id FROM outbox_messages WHERE routing_key = 'order.failed'", r => r.GetGuid(0));
            var consumedByInventory = await ShopData.QueryAsync(App, "inventorydb",
                "SELECT event_id FROM inbox_messages WHERE consumer = 'inventory' AND event_type = 'order.failed'", r => r.GetGuid(0));
            Assert.Equal(failedEvents.Order(), consumedByInventory.Order());
            var createdEvents = await ShopData.QueryAsync(App, "ordersdb",
                "SELECT event_id FROM outbox_messages WHERE routing_key = 'order.created'", r => r.GetGuid(0));
            var consumedByNotifications = await ShopData.QueryAsync(App, "notificationsdb",
                "SELECT event_id FROM inbox_messages WHERE event_type = 'order.created'", r => r.GetGuid(0));
            Assert.Equal(createdEvents.Order(), consumedByNotifications.Order());
            Assert.Equal(0, await ShopData.ScalarAsync<long>(App, "notificationsdb",
                "SELECT count(*) FROM (SELECT event_id FROM notifications GROUP BY event_id HAVING count(*) > 1) d"));
        }
        finally
        {
            foreach (var customer in customers)
            {
                customer.Dispose();
            }
        }
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "Outboxes did not drain or consumers did not catch up within 90 s.");
            await Task.Delay(500, Cancellation);
        }
    }
}
