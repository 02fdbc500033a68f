using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Npgsql;
using Shop.Hosting;
using Shop.Hosting.Orchestration;

namespace Shop.Tests.Integration;

/// <summary>
/// An application of its own, because these tests break it on purpose: two Orders replicas, a payment provider
/// slow enough that sagas are in flight when a replica dies, short saga and Idempotency-Key leases so the survivor
/// takes over soon, and HTTP timeouts short enough that a stalled Inventory exhausts the saga's retries within the test.
/// </summary>
public sealed class ChaosFixture : IAsyncLifetime
{
    public const int IdempotencyLeaseSeconds = 3;

    public DistributedApplication App { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        App = await AppFixture.StartAsync(
            $"--AppHost:AdminPassword={AppFixture.AdminPassword}",
            "--AppHost:Replicas:orders=2",
            "--AppHost:Environment:orders:Payments__Fake__LatencyMilliseconds=400",
            "--AppHost:Environment:orders:Saga__LeaseSeconds=5",
            $"--AppHost:Environment:orders:Idempotency__InProgressLeaseSeconds={IdempotencyLeaseSeconds}",
            "--AppHost:Environment:orders:Saga__RetryMaxDelayMilliseconds=2000",
            "--AppHost:Environment:orders:Resilience__Http__AttemptTimeout=00:00:04",
            "--AppHost:Environment:orders:Resilience__Http__TotalRequestTimeout=00:00:10");
    }

    public async ValueTask DisposeAsync() => await App.DisposeAsync();
}

/// <summary>
/// Runs after the other collections, alone: its tests kill replicas and restart the servers, and wait on time-outs of a
/// few seconds, which a 2-core machine also running the other collections' load stretched past their limits (a dependency
/// call timing out as 503 where the test needed it to reach a lock).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
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
        using var crowd = await ShopClients.CustomersAsync(App, orderCount);
        var customers = crowd.Clients;
        // The first half with the broker up, the second with it stopped: orders are accepted either way. Inventory's
        // reservations wait on a lock the test holds while the second half is placed, so that its sagas are still in
        // flight when one Orders replica is killed outright. (Killed after the burst without it, the replica once found
        // every saga already ended, on a loaded CI machine.)
        var victim = App.ResourceNotifications.GetSnapshot("orders").Replicas[0];
        long inFlight;
        Guid[] firstHalf, secondHalf;
        try
        {
            firstHalf = await Task.WhenAll(customers.Take(orderCount / 2).Select(c => ShopData.PlaceOrderRetryingAsync(c, product, 1)));
            await App.Orchestrator.StopResourceAsync("messaging");
            await using (await TableLock.TakeAsync(App.GetConnectionString("inventorydb")!, "reservations", "ACCESS EXCLUSIVE"))
            {
                secondHalf = await Task.WhenAll(customers.Skip(orderCount / 2).Select(c => ShopData.PlaceOrderRetryingAsync(c, product, 1)));
                inFlight = await ShopData.ScalarAsync<long>(App, "ordersdb", "SELECT count(*) FROM order_sagas WHERE step <> 'Done'");
                using var process = Process.GetProcessById(victim.Pid!.Value);
                process.Kill();
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Say which dependency failed: the answer itself only says "unavailable".
            var failures = App.Orchestrator.Notifications.Find("orders").Logs.Tail(2000)
                .Select(l => l.Text).Where(t => t.Contains("Dependency failure", StringComparison.Ordinal))
                .Select(t => t.Length > 600 ? t[..600] : t).TakeLast(3);
            throw new InvalidOperationException($"{ex.Message} Orders logged: {string.Join(" | ", failures)}", ex);
        }

        var orders = firstHalf.Concat(secondHalf).ToArray();
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

        // Every event left both outboxes, and every consumer took each one once (in the inbox, with its
        // effect, or dropped as older than what it had applied: publication order is not guaranteed).
        await ShopData.WaitUntilAsync("ordersdb outbox drained", async () =>
            await ShopData.ScalarAsync<long>(App, "ordersdb", "SELECT count(*) FROM outbox_messages WHERE sent_at IS NULL") == 0);
        await ShopData.WaitUntilAsync("inventorydb outbox drained", async () =>
            await ShopData.ScalarAsync<long>(App, "inventorydb", "SELECT count(*) FROM outbox_messages WHERE sent_at IS NULL") == 0);
        await ShopData.WaitUntilAsync("every order.created in the Notifications inbox", async () =>
            await ShopData.ScalarAsync<long>(App, "notificationsdb",
                $"SELECT count(*) FROM inbox_messages WHERE event_type = 'order.created'") >= await ShopData.ScalarAsync<long>(App, "ordersdb",
                "SELECT count(*) FROM outbox_messages WHERE routing_key = 'order.created'"));
        await ShopData.WaitUntilAsync("every failed order closed in Inventory", async () =>
            await ShopData.ScalarAsync<long>(App, "inventorydb",
                $"SELECT count(*) FROM reservations WHERE closed AND order_id = ANY({ids}::uuid[])") == orderCount - stock);
        Assert.Equal(orderCount, await ShopData.ScalarAsync<long>(App, "notificationsdb",
            $"SELECT count(DISTINCT subject_id) FROM notifications WHERE subject_id = ANY({ids})"));
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

    [Fact]
    public async Task When_inventory_cannot_answer_through_every_retry_the_order_fails_and_no_stock_stays_held()
    {
        var product = await ShopData.CreateProductAsync(App, stock: 5);
        var (customer, _) = await ShopClients.CustomerAsync(App);
        using var _c = customer;

        // Inventory's reservations stall: a lock the test holds makes every reservation wait out its timeouts,
        // while the catalog (which Orders needs to accept the order) still answers.
        Guid orderId;
        await using (await TableLock.TakeAsync(App.GetConnectionString("inventorydb")!, "reservations", "ACCESS EXCLUSIVE"))
        {
            orderId = await ShopData.PlaceOrderAsync(customer, product, 2);
            var order = await ShopData.WaitForOrderAsync(customer, orderId, TimeSpan.FromSeconds(120), "Failed", "Paid", "Cancelled");

            Assert.Equal("Failed", order.GetProperty("status").GetString());
            Assert.StartsWith("inventory_unavailable", order.GetProperty("statusReason").GetString());
        }

        // Inventory answers again: order.failed reaches it and it releases whatever the order got (a reservation
        // whose answer was lost) or closes the order so that a late reservation is refused.
        await ShopData.WaitForStockAsync(App, product, (5, 0), TimeSpan.FromSeconds(60));
        await ShopData.WaitUntilAsync("the failed order's reservation released or closed", async () => await ShopData.ScalarAsync<long>(App, "inventorydb",
            $"SELECT count(*) FROM reservations WHERE order_id = '{orderId}' AND status = 'Released'") == 1);
    }

    [Fact]
    public async Task An_order_whose_replica_died_mid_request_is_placed_once_by_a_retry_with_the_same_key_once_the_lease_ran_out()
    {
        var product = await ShopData.CreateProductAsync(App, stock: 5);
        var (gateway, tokens) = await ShopClients.CustomerAsync(App);
        using var _g = gateway;
        await App.ResourceNotifications.WaitForResourceHealthyAsync("orders", Cancellation);
        var victim = App.ResourceNotifications.GetSnapshot("orders").Replicas.First(r => r.Health == HealthState.Healthy);
        using var direct = App.CreateHttpClient("orders", victim.Index);
        direct.DefaultRequestHeaders.Authorization = new("Bearer", tokens.AccessToken);
        var body = new { items = new[] { new { productId = product, quantity = 1 } } };
        var key = Guid.NewGuid().ToString("N");

        // The first attempt claims its key, then waits on a lock the test holds (inserts into orders are blocked),
        // and its replica is killed there: the key is left "in progress" by a request that will never finish.
        await using (await TableLock.TakeAsync(App.GetConnectionString("ordersdb")!, "orders", "SHARE"))
        {
            var first = await SendUntilWaitingOnTheLockAsync(() => direct.PostOrderAsync(body, key), key, waiting: 1);
            using var process = Process.GetProcessById(victim.Pid!.Value);
            process.Kill();
            await Assert.ThrowsAnyAsync<HttpRequestException>(() => first);
        }

        // A careful client retries with the same key. It is told "in progress" (409) until the dead attempt's lease runs
        // out; then its retry runs the request. (Without a lease the key stayed "in progress" for a day.)
        var (retry, answers) = await RetryUntilSettledAsync(gateway, body, key);
        using var _r = retry;
        Assert.True(retry.StatusCode == HttpStatusCode.Accepted, $"The retry ended with {(int)retry.StatusCode}; answers on the way: {string.Join(", ", answers.CountBy(a => a).Select(a => $"{a.Key} ×{a.Value}"))}.");
        Assert.False(retry.Headers.Contains("Idempotent-Replayed"));
        var order = (await retry.Content.ReadFromJsonAsync<JsonElement>(Cancellation)).GetProperty("id").GetGuid();
        await AssertOnlyOrderAsync(gateway, order);

        using var replay = await gateway.PostOrderAsync(body, key);
        Assert.True(replay.StatusCode == HttpStatusCode.Accepted,
            $"The replay got {(int)replay.StatusCode}: {await replay.Content.ReadAsStringAsync(Cancellation)}");
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(order, (await replay.Content.ReadFromJsonAsync<JsonElement>(Cancellation)).GetProperty("id").GetGuid());
        await App.ResourceNotifications.WaitForResourceHealthyAsync("orders", Cancellation);
    }

    [Fact]
    public async Task A_retry_that_takes_over_a_stalled_request_after_its_lease_supersedes_it_and_the_order_is_placed_once()
    {
        var product = await ShopData.CreateProductAsync(App, stock: 5);
        var (gateway, _) = await ShopClients.CustomerAsync(App);
        using var _g = gateway;
        var body = new { items = new[] { new { productId = product, quantity = 1 } } };
        var key = Guid.NewGuid().ToString("N");

        // Both attempts stay alive and wait on the lock; the retry is sent once the first one's lease has run out, so it
        // takes the key over. When the lock goes, both try to commit an order: only the holder of the key may.
        Task<HttpResponseMessage> first, retry;
        await using (await TableLock.TakeAsync(App.GetConnectionString("ordersdb")!, "orders", "SHARE"))
        {
            first = await SendUntilWaitingOnTheLockAsync(() => gateway.PostOrderAsync(body, key), key, waiting: 1);
            await ShopData.WaitUntilAsync("the first attempt's lease ran out", async () => await ShopData.ScalarAsync<long>(App, "ordersdb",
                $"SELECT count(*) FROM idempotency_keys WHERE key = '{key}' AND locked_at < now() - interval '{ChaosFixture.IdempotencyLeaseSeconds} seconds'") == 1, seconds: 30);
            retry = await SendUntilWaitingOnTheLockAsync(() => gateway.PostOrderAsync(body, key), key, waiting: 2, earlier: first);
        }

        using var firstResponse = await first;
        using var retryResponse = await retry;
        Assert.Equal(HttpStatusCode.Conflict, firstResponse.StatusCode);
        Assert.Equal("Request superseded.", (await firstResponse.Content.ReadFromJsonAsync<JsonElement>(Cancellation)).GetProperty("title").GetString());
        Assert.Equal(HttpStatusCode.Accepted, retryResponse.StatusCode);
        var order = (await retryResponse.Content.ReadFromJsonAsync<JsonElement>(Cancellation)).GetProperty("id").GetGuid();
        await AssertOnlyOrderAsync(gateway, order);
        Assert.Equal(1, await ShopData.ScalarAsync<long>(App, "ordersdb",
            $"SELECT count(*) FROM outbox_messages WHERE routing_key = 'order.created' AND payload::text LIKE '%{product}%'"));
    }

    [Fact]
    public async Task A_service_that_never_fetched_the_gateways_keys_is_not_ready_answers_503_not_401_and_accepts_the_token_once_it_can()
    {
        var token = (await ShopClients.LoginAsync(App, "admin@demo.local", AppFixture.AdminPassword)).AccessToken;
        var before = App.ResourceNotifications.GetSnapshot("notifications").Replicas.Single();
        using var notifications = new HttpClient { BaseAddress = new Uri(before.Endpoint!) };
        notifications.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        timeout.CancelAfter(TimeSpan.FromSeconds(120));

        // Notifications starts again while no Gateway replica runs: it has never held the keys that signed the token, so it
        // is up but not ready, and says why.
        await App.Orchestrator.StopResourceAsync("gateway");
        try
        {
            await App.Orchestrator.RestartResourceAsync("notifications");
            await App.ResourceNotifications.WaitForResourceAsync("notifications",
                s => s.Replicas.Single().Pid is { } pid && pid != before.Pid, timeout.Token);
            JsonElement health = default;
            await ShopData.WaitUntilAsync("the restarted replica answering /health", async () =>
            {
                try
                {
                    using var answer = await notifications.GetAsync("/health", timeout.Token);
                    health = await answer.Content.ReadFromJsonAsync<JsonElement>(timeout.Token);
                    return answer.StatusCode == HttpStatusCode.ServiceUnavailable
                        && health.GetProperty("checks").GetProperty("migrations").GetProperty("status").GetString() == "Healthy";
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            }, seconds: 60);
            Assert.Equal("Unhealthy", health.GetProperty("checks").GetProperty("signing-keys").GetProperty("status").GetString());
            Assert.False(App.ResourceNotifications.GetSnapshot("notifications").IsHealthy);

            var asked = Stopwatch.StartNew();
            using var unavailable = await notifications.GetAsync("/v1/admin/dead-letters", timeout.Token);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, unavailable.StatusCode);
            // No request waits long for a fetch (each is bounded at 3 s); this bound is loose for a loaded machine.
            Assert.True(asked.Elapsed < TimeSpan.FromSeconds(20), $"The 503 took {asked.Elapsed}.");
            Assert.Equal("application/problem+json", unavailable.Content.Headers.ContentType?.MediaType);
            Assert.Equal(TimeSpan.FromSeconds(5), unavailable.Headers.RetryAfter?.Delta);
            Assert.Equal("Tokens cannot be checked right now.",
                (await unavailable.Content.ReadFromJsonAsync<JsonElement>(timeout.Token)).GetProperty("title").GetString());
            // A token that is malformed is still refused outright: only the keys are missing, not the judgement.
            using var malformed = new HttpRequestMessage(HttpMethod.Get, "/v1/admin/dead-letters");
            malformed.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "not-a-token");
            using var refused = await notifications.SendAsync(malformed, timeout.Token);
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }
        finally
        {
            await App.Orchestrator.StartResourceAsync("gateway");
        }

        // While the Gateway starts, each replica's JWKS is either refused or a set with the token's key: never a set
        // without it (before its keys were loaded, a replica answered an empty set, and the service then refused the
        // token with 401 though it was ready).
        var kid = JsonDocument.Parse(Microsoft.IdentityModel.Tokens.Base64UrlEncoder.Decode(token.Split('.')[0])).RootElement.GetProperty("kid").GetString()!;
        var answers = new List<string>();
        using (var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(2) })
        {
            while (!App.ResourceNotifications.GetSnapshot("gateway").IsHealthy)
            {
                foreach (var replica in App.ResourceNotifications.GetSnapshot("gateway").Replicas)
                {
                    try
                    {
                        using var jwks = await probe.GetAsync($"{replica.Endpoint}/.well-known/jwks.json", timeout.Token);
                        var body = await jwks.Content.ReadAsStringAsync(timeout.Token);
                        answers.Add(jwks.StatusCode != HttpStatusCode.OK ? $"{(int)jwks.StatusCode}" : body.Contains(kid, StringComparison.Ordinal) ? "the key" : $"a set without the key: {body}");
                    }
                    catch (Exception ex) when (ex is HttpRequestException || ex is TaskCanceledException && !timeout.IsCancellationRequested)
                    {
                        answers.Add("no answer");
                    }
                }

                await Task.Delay(20, timeout.Token);
            }
        }

        Assert.DoesNotContain(answers, a => a.StartsWith("a set without", StringComparison.Ordinal));
        TestContext.Current.SendDiagnosticMessage($"JWKS while the Gateway started: {string.Join(", ", answers.CountBy(a => a).Select(a => $"{a.Key} ×{a.Value}"))}");

        // Once the Gateway answers again, the service fetches the keys, becomes ready and accepts the token.
        await App.ResourceNotifications.WaitForResourceHealthyAsync("notifications", timeout.Token);
        using var accepted = await notifications.GetAsync("/v1/admin/dead-letters", timeout.Token);
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
    }

    [Fact]
    public async Task With_Redis_down_the_catalog_and_orders_are_still_served_through_the_gateway_and_refused_writes_eject_no_replica()
    {
        using var admin = await ShopClients.AdminAsync(App);
        var (customer, _) = await ShopClients.CustomerAsync(App);
        using var _customer = customer;
        var product = await ShopData.CreateProductAsync(App, stock: 5);
        using var before = await admin.GetAsync($"/v1/products/{product}", Cancellation);
        Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        timeout.CancelAfter(TimeSpan.FromSeconds(120));

        await App.Orchestrator.StopResourceAsync("redis");
        try
        {
            // Every replica of the Gateway and of Inventory has noticed: its readiness report names Redis as down.
            foreach (var resource in new[] { "gateway", "inventory" })
            {
                foreach (var replica in App.ResourceNotifications.GetSnapshot(resource).Replicas)
                {
                    using var direct = new HttpClient { BaseAddress = new Uri(replica.Endpoint!) };
                    await ShopData.WaitUntilAsync($"{resource} at {replica.Endpoint} to report Redis down", async () =>
                    {
                        using var health = await direct.GetAsync("/health", timeout.Token);
                        var report = await health.Content.ReadFromJsonAsync<JsonElement>(timeout.Token);
                        return report.GetProperty("checks").GetProperty("redis").GetProperty("status").GetString() != "Healthy";
                    }, seconds: 30);
                }
            }

            // Over more than one probe interval of the Gateway (5 s) and of the AppHost (5 s), every read is answered.
            var reading = Stopwatch.StartNew();
            while (reading.Elapsed < TimeSpan.FromSeconds(12))
            {
                using var read = await admin.GetAsync($"/v1/products/{product}", timeout.Token);
                Assert.True(read.StatusCode == HttpStatusCode.OK,
                    $"A read with Redis down after {reading.Elapsed}: {(int)read.StatusCode} {await read.Content.ReadAsStringAsync(timeout.Token)}");
                await Task.Delay(250, timeout.Token);
            }

            // A product write cannot invalidate the cache, so Inventory refuses it. These are the service's answers, not
            // a failure of its replicas: twice as many in a row as eject a replica (3) for each of the two leave both in
            // rotation, however the Gateway's round robin spreads them.
            for (var attempt = 0; attempt < 12; attempt++)
            {
                using var write = await PutProductAsync(admin, product, "Renamed with Redis down", before.Headers.ETag!, timeout.Token);
                Assert.Equal(HttpStatusCode.ServiceUnavailable, write.StatusCode);
                Assert.Equal("The product cannot be changed right now.",
                    (await write.Content.ReadFromJsonAsync<JsonElement>(timeout.Token)).GetProperty("title").GetString());
            }

            for (var attempt = 0; attempt < 4; attempt++)
            {
                using var read = await admin.GetAsync($"/v1/products/{product}", timeout.Token);
                Assert.Equal(HttpStatusCode.OK, read.StatusCode);
            }

            // A customer still orders: the reservation is made in the database.
            var order = await ShopData.PlaceOrderAsync(customer, product, 1);
            var placed = await ShopData.WaitForOrderAsync(customer, order, TimeSpan.FromSeconds(60), "Paid", "Failed", "Cancelled");
            Assert.Equal("Paid", placed.GetProperty("status").GetString());
        }
        finally
        {
            await App.Orchestrator.StartResourceAsync("redis");
        }

        // With Redis back, the refused write is made.
        await App.ResourceNotifications.WaitForResourceHealthyAsync("redis", timeout.Token);
        await ShopData.WaitUntilAsync("the write to be accepted with Redis back", async () =>
        {
            using var write = await PutProductAsync(admin, product, "Renamed with Redis back", before.Headers.ETag!, timeout.Token);
            return write.StatusCode == HttpStatusCode.OK;
        }, seconds: 30);
        Assert.Equal("Renamed with Redis back",
            (await admin.GetFromJsonAsync<JsonElement>($"/v1/products/{product}", timeout.Token)).GetProperty("name").GetString());
    }

    /// <summary>
    /// A stopped Redis refuses connections, and every call fails at once; a paused one (a stall, swapping, a network that
    /// drops packets) keeps them open and answers nothing. The Gateway's identity calls must give up on it like the rate
    /// limiter does: before, a signed-in request waited on the revocation check until Redis came back.
    /// </summary>
    [Fact]
    public async Task With_Redis_paused_signed_in_requests_logins_and_logouts_are_answered_within_seconds_and_a_logout_lands_once_it_resumes()
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        timeout.CancelAfter(TimeSpan.FromSeconds(120));
        var (email, password) = await ShopClients.RegisterAsync(App);
        var during = await ShopClients.LoginAsync(App, email, password);
        using var signedIn = ShopClients.Authorized(App, during.AccessToken);
        var redis = App.ResourceNotifications.GetSnapshot("redis").Replicas.Single().Pid!.Value;

        Assert.True(NativeMethods.Signal(redis, NativeMethods.SIGSTOP));
        try
        {
            // Past the revocation lease (250 ms) and the four leases without an answer after which a replica drops its
            // subscription: every Gateway replica now asks Redis whether a token is revoked.
            await Task.Delay(TimeSpan.FromSeconds(2), timeout.Token);

            // The AppHost's proxy spreads connections over the Gateway replicas: enough requests reach each of them.
            for (var attempt = 0; attempt < 6; attempt++)
            {
                using var me = await AnsweredWithinAsync("a signed-in request", client => client.GetAsync("/v1/auth/me", timeout.Token), signedIn, timeout.Token);
                Assert.Equal(HttpStatusCode.OK, me.StatusCode);
            }

            using var anonymous = ShopClients.Anonymous(App);
            using var login = await AnsweredWithinAsync("a login", client => client.PostAsJsonAsync("/v1/auth/login", new { tenant = "demo", email, password }, timeout.Token),
                anonymous, timeout.Token);
            Assert.Equal(HttpStatusCode.OK, login.StatusCode);

            // The revocation cannot be written: the logout says so, and the client may try again.
            using var logout = await AnsweredWithinAsync("a logout", client => client.PostAsync("/v1/auth/logout", null, timeout.Token), signedIn, timeout.Token);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, logout.StatusCode);
            Assert.NotNull(logout.Headers.RetryAfter);
        }
        finally
        {
            NativeMethods.Signal(redis, NativeMethods.SIGCONT);
        }

        // Resumed: a logout is written and every replica refuses the token from then on.
        var after = await ShopClients.LoginAsync(App, email, password);
        using var leaving = ShopClients.Authorized(App, after.AccessToken);
        await ShopData.WaitUntilAsync("a logout to be accepted with Redis resumed", async () =>
        {
            using var logout = await leaving.PostAsync("/v1/auth/logout", null, timeout.Token);
            return logout.StatusCode == HttpStatusCode.NoContent;
        }, seconds: 30);
        for (var attempt = 0; attempt < 6; attempt++)
        {
            using var refused = await leaving.GetAsync("/v1/auth/me", timeout.Token);
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }
    }

    /// <summary>
    /// A stopped PostgreSQL refuses connections, and every statement fails at once; a paused one keeps its connections
    /// open and answers nothing. Before, a statement waited Npgsql's default 30 s for its answer, then up to 30 s more while
    /// Npgsql tried to cancel it on a new connection, past the Gateway's 30 s: the client got the Gateway's 504 instead of
    /// Inventory's 503, and a caller straight to Inventory waited a minute. Requests queued behind a stalled one (for a transaction slot, or behind their product's
    /// batch) waited for it and then as long again for their own.
    /// </summary>
    [Fact]
    public async Task With_PostgreSQL_paused_requests_are_answered_503_before_the_Gateways_timeout_and_once_it_resumes_each_replica_reserves_again()
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        timeout.CancelAfter(TimeSpan.FromSeconds(180));
        var adminToken = (await ShopClients.LoginAsync(App, "admin@demo.local", AppFixture.AdminPassword)).AccessToken;
        var serviceToken = await ShopClients.ServiceTokenAsync(App);
        var replicas = App.ResourceNotifications.GetSnapshot("inventory").Replicas;
        var services = replicas.Select(r => Direct(r.Endpoint!, serviceToken)).ToList();
        using var admin = ShopClients.Authorized(App, adminToken);
        var product = await ShopData.CreateProductAsync(App, stock: 100);
        var others = new List<Guid>();
        for (var other = 0; other < 8; other++)
        {
            others.Add(await ShopData.CreateProductAsync(App, stock: 10));
        }

        try
        {
            // Each replica has read the product into its cache, and has pooled connections open to the server.
            foreach (var service in services)
            {
                for (var read = 0; read < 2; read++)
                {
                    using var cached = await service.GetAsync($"/v1/products/{product}", timeout.Token);
                    Assert.Equal(HttpStatusCode.OK, cached.StatusCode);
                }

                using var reserved = await service.PostAsJsonAsync("/v1/reservations",
                    new { orderId = Guid.NewGuid(), items = new[] { new { productId = product, quantity = 1 } } }, timeout.Token);
                Assert.Equal(HttpStatusCode.Created, reserved.StatusCode);
            }

            // The postmaster first, so that it starts no process once its children are listed.
            var postmaster = App.ResourceNotifications.GetSnapshot("postgres").Replicas.Single().Pid!.Value;
            Assert.True(NativeMethods.Signal(postmaster, NativeMethods.SIGSTOP));
            var paused = new List<int> { postmaster };
            try
            {
                foreach (var child in Descendants(postmaster))
                {
                    if (NativeMethods.Signal(child, NativeMethods.SIGSTOP))
                    {
                        paused.Add(child);
                    }
                }

                // On each replica: three reservations of one product (two wait behind the first's batch) and one of each of
                // eight others (one more transaction than the replica runs at once: one waits for a slot).
                var needing = services.SelectMany((service, index) => Enumerable.Repeat(product, 3).Concat(others).Select(reserving =>
                        TimedAsync($"a reservation on Inventory replica {index}", () => service.PostAsJsonAsync("/v1/reservations",
                            new { orderId = Guid.NewGuid(), items = new[] { new { productId = reserving, quantity = 1 } } }, timeout.Token))))
                    .Append(TimedAsync("a stock adjustment through the Gateway", () => admin.PostAsJsonAsync($"/v1/inventory/{product}/adjustments",
                        new { delta = 1, reason = "restock while the database was paused" }, timeout.Token)))
                    .ToList();

                foreach (var (what, response, took) in await Task.WhenAll(needing))
                {
                    using (response)
                    {
                        var body = await response.Content.ReadAsStringAsync(timeout.Token);
                        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{what} with PostgreSQL paused: {(int)response.StatusCode} {body} after {took}");
                        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
                        Assert.NotNull(response.Headers.RetryAfter);
                        Assert.True(took < TimeSpan.FromSeconds(28), $"{what} with PostgreSQL paused took {took}");
                    }
                }
            }
            finally
            {
                foreach (var pid in paused)
                {
                    NativeMethods.Signal(pid, NativeMethods.SIGCONT);
                }
            }

            // Resumed: each replica reserves again, and no connection given up on while paused is handed out again.
            foreach (var (service, index) in services.Select((service, index) => (service, index)))
            {
                await ShopData.WaitUntilAsync("a reservation with PostgreSQL resumed", async () =>
                {
                    using var reserved = await service.PostAsJsonAsync("/v1/reservations",
                        new { orderId = Guid.NewGuid(), items = new[] { new { productId = product, quantity = 1 } } }, timeout.Token);
                    return reserved.StatusCode == HttpStatusCode.Created;
                }, seconds: 30);
                using var direct = Direct(replicas[index].Endpoint!, adminToken);
                for (var read = 0; read < 20; read++)
                {
                    using var stock = await direct.GetAsync($"/v1/inventory/{product}", timeout.Token);
                    Assert.True(stock.StatusCode == HttpStatusCode.OK,
                        $"Read {read + 1} of {direct.BaseAddress} with PostgreSQL resumed: {(int)stock.StatusCode} {await stock.Content.ReadAsStringAsync(timeout.Token)}");
                }
            }

            // What each request answered is what happened: the stock holds exactly the reservations that exist.
            var held = await ShopData.ScalarAsync<long>(App, "inventorydb",
                $"SELECT coalesce(sum(i.quantity), 0) FROM reservations r JOIN reservation_items i ON i.reservation_id = r.id WHERE i.product_id = '{product}' AND r.status = 'Active'");
            var (quantity, reservedUnits) = await ShopData.StockAsync(App, product);
            Assert.Equal(held, reservedUnits);
            Assert.True(quantity is 100 or 101, $"quantity {quantity}");
        }
        finally
        {
            foreach (var client in services)
            {
                client.Dispose();
            }

            foreach (var resource in new[] { "postgres", "gateway", "orders", "notifications", "inventory" })
            {
                await App.ResourceNotifications.WaitForResourceHealthyAsync(resource, Cancellation);
            }
        }

        static async Task<(string What, HttpResponseMessage Response, TimeSpan Took)> TimedAsync(string what, Func<Task<HttpResponseMessage>> send)
        {
            var watch = Stopwatch.StartNew();
            var response = await send();
            return (what, response, watch.Elapsed);
        }
    }

    /// <summary>Every process under <paramref name="root"/>, from the parent of each in /proc.</summary>
    private static List<int> Descendants(int root)
    {
        var parents = new Dictionary<int, int>();
        foreach (var folder in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(folder), out var pid))
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(folder, "stat"));
                parents[pid] = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
                // Gone since the folder was listed.
            }
        }

        var found = new List<int>();
        var next = new Queue<int>([root]);
        while (next.TryDequeue(out var parent))
        {
            foreach (var child in parents.Where(p => p.Value == parent).Select(p => p.Key))
            {
                found.Add(child);
                next.Enqueue(child);
            }
        }

        return found;
    }

    /// <summary>The answer to a request, which must come within 5 s (each identity call to Redis may take 500 ms).</summary>
    private static async Task<HttpResponseMessage> AnsweredWithinAsync(string what, Func<HttpClient, Task<HttpResponseMessage>> send, HttpClient client,
        CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var answer = send(client);
        if (await Task.WhenAny(answer, Task.Delay(TimeSpan.FromSeconds(15), cancellationToken)) != answer)
        {
            Assert.Fail($"{what} with Redis paused was not answered within 15 s");
        }

        var response = await answer;
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"{what} with Redis paused took {watch.Elapsed}");
        return response;
    }

    [Fact]
    public async Task With_PostgreSQL_down_inventory_answers_503_never_500_and_after_a_restart_it_reserves_again_with_nothing_lost()
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        timeout.CancelAfter(TimeSpan.FromSeconds(240));
        var adminToken = (await ShopClients.LoginAsync(App, "admin@demo.local", AppFixture.AdminPassword)).AccessToken;
        var serviceToken = await ShopClients.ServiceTokenAsync(App);
        var replicas = App.ResourceNotifications.GetSnapshot("inventory").Replicas;
        var pids = replicas.Select(r => r.Pid).ToList();
        var services = replicas.Select(r => Direct(r.Endpoint!, serviceToken)).ToList();
        var admins = replicas.Select(r => Direct(r.Endpoint!, adminToken)).ToList();
        try
        {
            var product = await ShopData.CreateProductAsync(App, stock: 100_000);
            // Each Gateway replica probes a service once it has forwarded to it.
            var gateways = App.ResourceNotifications.GetSnapshot("gateway").Replicas.Count;
            for (var gateway = 0; gateway < gateways; gateway++)
            {
                using var client = ShopClients.Authorized(App, adminToken, gateway);
                using var read = await client.GetAsync($"/v1/products/{product}", timeout.Token);
                Assert.Equal(HttpStatusCode.OK, read.StatusCode);
            }

            var held = new { orderId = Guid.NewGuid(), items = new[] { new { productId = product, quantity = 2 } } };
            Guid heldId;
            using (var reserved = await services[0].PostAsJsonAsync("/v1/reservations", held, timeout.Token))
            {
                Assert.Equal(HttpStatusCode.Created, reserved.StatusCode);
                heldId = (await reserved.Content.ReadFromJsonAsync<JsonElement>(timeout.Token)).GetProperty("id").GetGuid();
            }

            // Reservations keep coming while the database stops, so some are in flight when their sessions are cut.
            using var stopLoad = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
            var loaded = new System.Collections.Concurrent.ConcurrentBag<(Guid Order, int Status, string Body)>();
            var load = Enumerable.Range(0, 16).Select(worker => Task.Run(async () =>
            {
                while (!stopLoad.IsCancellationRequested)
                {
                    var order = Guid.NewGuid();
                    using var response = await services[worker % services.Count].PostAsJsonAsync("/v1/reservations",
                        new { orderId = order, items = new[] { new { productId = product, quantity = 1 } } }, timeout.Token);
                    loaded.Add((order, (int)response.StatusCode, await response.Content.ReadAsStringAsync(timeout.Token)));
                }
            })).ToList();
            await ShopData.WaitUntilAsync("reservations under way", () => Task.FromResult(loaded.Count(l => l.Status == 201) >= 20), seconds: 60);

            var stopped = DateTimeOffset.UtcNow;
            await App.Orchestrator.StopResourceAsync("postgres");
            try
            {
                // Every kind of request, on both replicas, for 10 s: each is answered, and never with a 500.
                var answers = new Dictionary<string, int>();
                var asking = Stopwatch.StartNew();
                var round = 0;
                while (asking.Elapsed < TimeSpan.FromSeconds(10))
                {
                    var service = services[round % services.Count];
                    var admin = admins[round++ % admins.Count];
                    var requests = new (string Name, Func<Task<HttpResponseMessage>> Send)[]
                    {
                        ("reserve", () => service.PostAsJsonAsync("/v1/reservations",
                            new { orderId = Guid.NewGuid(), items = new[] { new { productId = product, quantity = 1 } } }, timeout.Token)),
                        ("repeat a reservation", () => service.PostAsJsonAsync("/v1/reservations", held, timeout.Token)),
                        ("confirm", () => service.PostAsync($"/v1/reservations/{heldId}/confirm", null, timeout.Token)),
                        ("read a product", () => admin.GetAsync($"/v1/products/{product}", timeout.Token)),
                        ("list products", () => admin.GetAsync("/v1/products", timeout.Token)),
                        ("read stock", () => admin.GetAsync($"/v1/inventory/{product}", timeout.Token)),
                        ("stats", () => admin.GetAsync("/v1/inventory/stats", timeout.Token)),
                        ("create a product", () => admin.PostAsJsonAsync("/v1/products",
                            new { sku = $"SKU-{Guid.NewGuid():N}", name = "Made while the database was down", description = "",
                                price = new { amount = 1m, currency = "EUR" }, initialStock = 1 }, timeout.Token)),
                        ("adjust stock", () => admin.PostAsJsonAsync($"/v1/inventory/{product}/adjustments",
                            new { delta = 1, reason = "restock while the database was down" }, timeout.Token)),
                    };
                    foreach (var (name, send) in requests)
                    {
                        using var response = await send();
                        var status = (int)response.StatusCode;
                        Assert.True(status is 200 or 503,
                            $"{name} with the database down: {status} {await response.Content.ReadAsStringAsync(timeout.Token)}");
                        if (status == 503)
                        {
                            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
                            Assert.NotNull(response.Headers.RetryAfter);
                        }

                        answers[$"{name} {status}"] = answers.GetValueOrDefault($"{name} {status}") + 1;
                    }
                }

                // Whatever it could not do, it said so: nothing that needs the database succeeded.
                Assert.DoesNotContain(answers.Keys, k => k.StartsWith("reserve 2", StringComparison.Ordinal) || k.StartsWith("adjust stock 2", StringComparison.Ordinal)
                    || k.StartsWith("create a product 2", StringComparison.Ordinal));
                Assert.Contains("reserve 503", answers.Keys);

                // A Gateway replica asked about a key it does not hold cannot look for it: it can neither accept the token
                // nor call it invalid, so 503, not 401. (Straight to the replica: the AppHost's proxy has none ready now.)
                using (var gateway = Direct(App.ResourceNotifications.GetSnapshot("gateway").Replicas[0].Endpoint!, TokenWithUnknownKey()))
                using (var unjudged = await gateway.GetAsync("/v1/products", timeout.Token))
                {
                    Assert.Equal(HttpStatusCode.ServiceUnavailable, unjudged.StatusCode);
                    Assert.Equal(TimeSpan.FromSeconds(5), unjudged.Headers.RetryAfter?.Delta);
                    Assert.Equal("Tokens cannot be checked right now.",
                        (await unjudged.Content.ReadFromJsonAsync<JsonElement>(timeout.Token)).GetProperty("title").GetString());
                }

                stopLoad.Cancel();
                await Task.WhenAll(load);

                // Both probes have taken everything out: the AppHost's proxy every Gateway replica, and each Gateway every
                // Inventory replica.
                await ShopData.WaitUntilAsync("every Gateway replica out of the AppHost's rotation", () => Task.FromResult(
                    App.ResourceNotifications.GetSnapshot("gateway").Replicas.All(r => r.Health == HealthState.Unhealthy)), seconds: 30);
                await ShopData.WaitUntilAsync("every Inventory replica out of each Gateway's rotation", () => Task.FromResult(
                    App.Orchestrator.Notifications.Find("gateway").Logs.Tail(5000)
                        .Where(l => l.Timestamp >= stopped && l.Text.Contains("is now unhealthy", StringComparison.Ordinal))
                        .SelectMany(l => replicas.Where(r => l.Text.Contains($"inventory destination {r.Endpoint}/", StringComparison.Ordinal))
                            .Select(r => (Gateway: l.Replica, Inventory: r.Index)))
                        .Distinct().Count() == gateways * replicas.Count),
                    seconds: 30);

                // The database down is an outage that Inventory answers for (503 with Retry-After), not a defect: each
                // failed request is logged once, as a warning, and nothing is logged as an error.
                var errors = App.Orchestrator.Notifications.Find("inventory").Logs.Tail(5000)
                    .Where(l => l.Timestamp >= stopped && (l.Text.Contains("\"LogLevel\":\"Error\"", StringComparison.Ordinal)
                        || l.Text.Contains("\"LogLevel\":\"Critical\"", StringComparison.Ordinal)))
                    .Select(l => l.Text.Length > 600 ? l.Text[..600] : l.Text).ToList();
                Assert.True(errors.Count == 0, $"Inventory logged {errors.Count} errors during the outage, among them:\n{string.Join("\n", errors.Take(3))}");
            }
            finally
            {
                await App.Orchestrator.StartResourceAsync("postgres");
                // This process's own pooled connections (the tests' queries) died with the server.
                NpgsqlConnection.ClearAllPools();
            }

            // The first read through the API once the database is back is served. Neither the AppHost's proxy nor the
            // Gateway refuses it until its next scheduled probe (up to 5 s away): finding no replica ready, each asks the
            // unready ones again at once. (A run once failed here: the next test's first write got the Gateway's 503.)
            await App.ResourceNotifications.WaitForResourceHealthyAsync("postgres", timeout.Token);
            using (var api = ShopClients.Authorized(App, adminToken))
            using (var first = await api.GetAsync($"/v1/products/{product}", timeout.Token))
            {
                Assert.True(first.StatusCode == HttpStatusCode.OK,
                    $"The first read through the API after the restart: {(int)first.StatusCode} {await first.Content.ReadAsStringAsync(timeout.Token)}");
            }

            // Once the database is back, the same replicas (none crashed on the way) reserve again, and what was held
            // before the outage is still held, once.
            await App.ResourceNotifications.WaitForResourceHealthyAsync("inventory", timeout.Token);
            await ShopData.WaitUntilAsync("a reservation after the restart", async () =>
            {
                using var reserved = await services[1].PostAsJsonAsync("/v1/reservations",
                    new { orderId = Guid.NewGuid(), items = new[] { new { productId = product, quantity = 1 } } }, timeout.Token);
                return reserved.StatusCode == HttpStatusCode.Created;
            }, seconds: 60);

            // No replica keeps a connection that died with the server: Npgsql would hand each out once more, to fail.
            foreach (var admin in admins)
            {
                for (var read = 0; read < 20; read++)
                {
                    using var stock = await admin.GetAsync($"/v1/inventory/{product}", timeout.Token);
                    Assert.True(stock.StatusCode == HttpStatusCode.OK,
                        $"Read {read + 1} of {admin.BaseAddress} after the restart: {(int)stock.StatusCode} {await stock.Content.ReadAsStringAsync(timeout.Token)}");
                }
            }

            using (var repeated = await services[0].PostAsJsonAsync("/v1/reservations", held, timeout.Token))
            {
                Assert.Equal(HttpStatusCode.OK, repeated.StatusCode);
                Assert.Equal(heldId, (await repeated.Content.ReadFromJsonAsync<JsonElement>(timeout.Token)).GetProperty("id").GetGuid());
            }

            // The load's reservations: each answered 201 or 503, never 500, and every 201 was kept. A 503 may hide a commit
            // whose answer was lost with the connection (a client resolves that by repeating the orderId), so the stock
            // must match exactly the reservations that exist, whichever they are.
            var unexpected = loaded.Where(l => l.Status is not (201 or 503)).ToList();
            var unhandled = App.Orchestrator.Notifications.Find("inventory").Logs.Tail(3000)
                .Where(l => l.Text.Contains("Unhandled exception", StringComparison.Ordinal)).Take(3).Select(l => l.Text.Length > 3000 ? l.Text[..3000] : l.Text);
            Assert.True(unexpected.Count == 0,
                string.Join("\n", unexpected.Take(5).Select(u => $"{u.Status} {u.Body}")) + "\nInventory logged:\n" + string.Join("\n", unhandled));
            Assert.Contains(loaded, l => l.Status == 503);
            var kept = await ShopData.QueryAsync(App, "inventorydb",
                $"SELECT r.order_id, i.quantity FROM reservations r JOIN reservation_items i ON i.reservation_id = r.id WHERE i.product_id = '{product}' AND r.status = 'Active'",
                r => (Order: r.GetGuid(0), Quantity: r.GetInt32(1)));
            Assert.Subset(kept.Select(k => k.Order).ToHashSet(), loaded.Where(l => l.Status == 201).Select(l => l.Order).ToHashSet());
            Assert.Contains(kept, k => k.Order == held.orderId && k.Quantity == 2);
            Assert.Equal((100_000, kept.Sum(k => k.Quantity)), await ShopData.StockAsync(App, product));
            Assert.Equal(pids, App.ResourceNotifications.GetSnapshot("inventory").Replicas.Select(r => r.Pid).ToList());
        }
        finally
        {
            foreach (var client in services.Concat(admins))
            {
                client.Dispose();
            }

            // Every service is ready again, for the tests that follow on this application.
            foreach (var resource in new[] { "gateway", "orders", "notifications", "inventory" })
            {
                await App.ResourceNotifications.WaitForResourceHealthyAsync(resource, Cancellation);
            }
        }
    }

    [Fact]
    public async Task After_a_quick_PostgreSQL_restart_each_replica_fails_at_most_one_request_and_never_with_a_500()
    {
        var adminToken = (await ShopClients.LoginAsync(App, "admin@demo.local", AppFixture.AdminPassword)).AccessToken;
        var product = await ShopData.CreateProductAsync(App, stock: 5);
        var admins = App.ResourceNotifications.GetSnapshot("inventory").Replicas.Select(r => Direct(r.Endpoint!, adminToken)).ToList();
        try
        {
            // Each replica's pool holds a dozen idle connections, as after any busy moment.
            foreach (var admin in admins)
            {
                for (var round = 0; round < 3; round++)
                {
                    await Task.WhenAll(Enumerable.Range(0, 12).Select(async _ =>
                    {
                        using var stock = await admin.GetAsync($"/v1/inventory/{product}", Cancellation);
                        Assert.Equal(HttpStatusCode.OK, stock.StatusCode);
                    }));
                }
            }

            // A restart between two requests: every one of those connections is dead, and no request has used one since.
            // (Npgsql hands out no dead connection after the first failure; this keeps it so.)
            await RestartPostgresAsync();
            foreach (var admin in admins)
            {
                var failed = new List<int>();
                for (var read = 0; read < 20; read++)
                {
                    using var stock = await admin.GetAsync($"/v1/inventory/{product}", Cancellation);
                    if (stock.StatusCode != HttpStatusCode.OK)
                    {
                        Assert.Equal(HttpStatusCode.ServiceUnavailable, stock.StatusCode);
                        failed.Add(read + 1);
                    }
                }

                Assert.True(failed.Count <= 1, $"{admin.BaseAddress} failed reads {string.Join(", ", failed)} of 20 after the restart.");
            }

            // Through the Gateway, whose own pool met the restart as well: each replica may fail one login, with 503. No wait
            // for the AppHost to call the Gateway healthy: if a probe during the restart took its replicas out of the
            // proxy's rotation, the proxy has them probed again when a connection finds none.
            var logins = new List<int>();
            for (var attempt = 0; attempt < 6; attempt++)
            {
                using var anonymous = ShopClients.Anonymous(App);
                using var login = await anonymous.PostAsJsonAsync("/v1/auth/login",
                    new { tenant = "demo", email = "admin@demo.local", password = AppFixture.AdminPassword }, Cancellation);
                logins.Add((int)login.StatusCode);
            }

            Assert.True(logins.All(status => status is 200 or 503) && logins.Count(status => status == 503) <= 2 && logins[^1] == 200,
                $"Logins after the restart: {string.Join(", ", logins)}");
        }
        finally
        {
            foreach (var client in admins)
            {
                client.Dispose();
            }

            foreach (var resource in new[] { "gateway", "orders", "notifications", "inventory" })
            {
                await App.ResourceNotifications.WaitForResourceHealthyAsync(resource, Cancellation);
            }
        }
    }

    /// <summary>
    /// After a quick restart every idle connection of a replica's pool is dead, and Npgsql finds that out on the first
    /// statement that uses one. The Gateway runs nothing of its own on its database between requests, so that statement
    /// was a login's. The readiness probe, on connections of its own, meets the restart first: it clears the requests'
    /// pool and asks again on a new connection. So a Gateway replica that has answered its probe fails no login. Without
    /// the clearing, the first login of each replica was answered 503 (a CI run met it after MessagingTests' PostgreSQL
    /// outage); while the probes shared the requests' pool, they met the dead connection instead.
    /// </summary>
    [Fact]
    public async Task After_a_quick_PostgreSQL_restart_a_gateway_replica_that_has_answered_its_readiness_probe_fails_no_login()
    {
        var replicas = App.ResourceNotifications.GetSnapshot("gateway").Replicas.Select(r => r.Index).ToList();
        async Task<HttpResponseMessage> LoginAsync(int replica)
        {
            using var anonymous = ShopClients.Anonymous(App, replica);
            return await anonymous.PostAsJsonAsync("/v1/auth/login",
                new { tenant = "demo", email = "admin@demo.local", password = AppFixture.AdminPassword }, Cancellation);
        }

        // Each replica's pool holds a few idle connections.
        foreach (var replica in replicas)
        {
            var warm = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => LoginAsync(replica)));
            Assert.All(warm, w => Assert.Equal(HttpStatusCode.OK, w.StatusCode));
            foreach (var response in warm)
            {
                response.Dispose();
            }
        }

        try
        {
            await RestartPostgresAsync();
            foreach (var replica in replicas)
            {
                using (var direct = App.CreateHttpClient("gateway", replica))
                using (var probe = await direct.GetAsync("/health", Cancellation))
                {
                    Assert.True(probe.StatusCode == HttpStatusCode.OK,
                        $"Gateway replica {replica}'s /health after the restart: {await probe.Content.ReadAsStringAsync(Cancellation)}");
                }

                var failed = new List<string>();
                for (var attempt = 0; attempt < 3; attempt++)
                {
                    using var login = await LoginAsync(replica);
                    if (login.StatusCode != HttpStatusCode.OK)
                    {
                        failed.Add($"login {attempt + 1}: {(int)login.StatusCode} {await login.Content.ReadAsStringAsync(Cancellation)}");
                    }
                }

                Assert.True(failed.Count == 0, $"Gateway replica {replica} after its probe: {string.Join("; ", failed)}");
            }
        }
        finally
        {
            foreach (var resource in new[] { "gateway", "orders", "notifications", "inventory" })
            {
                await App.ResourceNotifications.WaitForResourceHealthyAsync(resource, Cancellation);
            }
        }
    }

    /// <summary>A quick restart of PostgreSQL between two requests: every connection the services hold is dead after it.</summary>
    private async Task RestartPostgresAsync()
    {
        await App.Orchestrator.StopResourceAsync("postgres");
        try
        {
            await App.Orchestrator.StartResourceAsync("postgres");
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
        }

        await App.ResourceNotifications.WaitForResourceHealthyAsync("postgres", Cancellation);
    }

    /// <summary>A well-formed access token whose key id no Gateway has issued (its signature is never reached).</summary>
    private static string TokenWithUnknownKey()
    {
        static string Encode(object value) => Microsoft.IdentityModel.Tokens.Base64UrlEncoder.Encode(JsonSerializer.Serialize(value));
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        return $"{Encode(new { alg = "RS256", typ = "at+jwt", kid = $"unknown-{Guid.NewGuid():N}" })}."
            + $"{Encode(new { sub = Guid.NewGuid(), iat = now, exp = now + 300 })}.c2lnbmF0dXJl";
    }

    private static HttpClient Direct(string endpoint, string token)
    {
        var client = new HttpClient { BaseAddress = new Uri(endpoint) };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    private static async Task<HttpResponseMessage> PutProductAsync(HttpClient admin, Guid product, string name,
        System.Net.Http.Headers.EntityTagHeaderValue etag, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, $"/v1/products/{product}")
        {
            Content = JsonContent.Create(new { sku = $"SKU-{product:N}", name, description = "", price = new { amount = 10.5m, currency = "EUR" }, active = true }),
        };
        request.Headers.IfMatch.Add(etag);
        return await admin.SendAsync(request, cancellationToken);
    }

    /// <summary>
    /// Sends a request with <paramref name="key"/> and returns it once <paramref name="waiting"/> requests hold or held the
    /// key and wait to insert their order. A request answered 503 before it got there (a dependency timed out on a loaded
    /// machine; its key is released) is sent again, as a careful client would, up to three times. On failure it says what
    /// the sessions were doing, how the requests ended, and which dependency Orders logged as failed.
    /// </summary>
    private async Task<Task<HttpResponseMessage>> SendUntilWaitingOnTheLockAsync(Func<Task<HttpResponseMessage>> send, string key, int waiting,
        Task<HttpResponseMessage>? earlier = null)
    {
        var ended = new List<string>();
        for (var sends = 1; ; sends++)
        {
            var sent = send();
            try
            {
                await ShopData.WaitUntilAsync($"{waiting} attempt(s) with the key waiting on the lock", async () => sent.IsCompleted
                    || (await ShopData.ScalarAsync<long>(App, "ordersdb", $"SELECT count(*) FROM idempotency_keys WHERE key = '{key}' AND status = 'InProgress'") == 1
                        && await ShopData.LockWaitersAsync(App, "ordersdb", "%INSERT INTO orders%") == waiting),
                    seconds: 60);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                ended.Add($"send {sends}: still waiting");
                throw await LockWaitFailedAsync(ex.Message, key, ended, earlier, ex);
            }

            if (!sent.IsCompleted)
            {
                return sent;
            }

            HttpStatusCode? status = null;
            try
            {
                using var answer = await sent;
                status = answer.StatusCode;
                ended.Add($"send {sends}: {(int)answer.StatusCode} {await answer.Content.ReadAsStringAsync(Cancellation)}");
            }
            catch (HttpRequestException ex)
            {
                ended.Add($"send {sends}: {ex.Message}");
            }

            if (status != HttpStatusCode.ServiceUnavailable || sends == 3 || earlier is { IsCompleted: true })
            {
                throw await LockWaitFailedAsync("The request ended before it waited on the lock.", key, ended, earlier);
            }

            TestContext.Current.TestOutputHelper?.WriteLine($"Sent again after {ended[^1]}. {await DescribeLockWaitAsync(key)}");
            await Task.Delay(TimeSpan.FromSeconds(1), Cancellation);
        }
    }

    private async Task<InvalidOperationException> LockWaitFailedAsync(string what, string key, List<string> ended, Task<HttpResponseMessage>? earlier,
        Exception? inner = null)
    {
        if (earlier is { IsCompleted: true })
        {
            ended.Add($"the earlier attempt: {(earlier.IsCompletedSuccessfully ? $"{(int)earlier.Result.StatusCode} {await earlier.Result.Content.ReadAsStringAsync(Cancellation)}" : earlier.Exception?.GetBaseException().Message)}");
        }

        return new InvalidOperationException($"{what} {await DescribeLockWaitAsync(key)} Requests: {string.Join(" | ", ended)}", inner);
    }

    /// <summary>The key's row, the sessions that are not idle, and the last dependency failures Orders logged.</summary>
    private async Task<string> DescribeLockWaitAsync(string key)
    {
        var sessions = await ShopData.QueryAsync(App, "ordersdb",
            "SELECT state, coalesce(wait_event_type, '') || ':' || coalesce(wait_event, ''), left(query, 80) FROM pg_stat_activity "
            + "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'",
            r => $"{r.GetString(0)} {r.GetString(1)} {r.GetString(2)}");
        var keys = await ShopData.QueryAsync(App, "ordersdb",
            $"SELECT status || ' attempt ' || attempt || ' locked ' || round(extract(epoch FROM now() - locked_at)::numeric, 1) || ' s ago' FROM idempotency_keys WHERE key = '{key}'",
            r => r.GetString(0));
        var failures = App.Orchestrator.Notifications.Find("orders").Logs.Tail(3000)
            .Select(l => l.Text).Where(t => t.Contains("Dependency failure", StringComparison.Ordinal))
            .Select(t => t.Length > 2000 ? t[..2000] : t).TakeLast(3);
        return $"Key: {string.Join("; ", keys)}. Sessions: {string.Join(" | ", sessions)}. Orders logged: {string.Join(" | ", failures)}.";
    }

    /// <summary>Sends the same request with the same key while it is answered 409 (in progress) or 502/503 (a replica down).</summary>
    private static async Task<(HttpResponseMessage Response, List<int> Answers)> RetryUntilSettledAsync(HttpClient client, object body, string key)
    {
        var answers = new List<int>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            var response = await client.PostOrderAsync(body, key);
            answers.Add((int)response.StatusCode);
            if (response.StatusCode is not (HttpStatusCode.Conflict or HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable) || DateTime.UtcNow > deadline)
            {
                return (response, answers);
            }

            response.Dispose();
            await Task.Delay(500, Cancellation);
        }
    }

    /// <summary>The customer has exactly one order, this one.</summary>
    private static async Task AssertOnlyOrderAsync(HttpClient customer, Guid order)
    {
        var orders = await customer.GetFromJsonAsync<JsonElement>("/v1/orders", Cancellation);
        Assert.Equal(1, orders.GetProperty("total").GetInt32());
        Assert.Equal(order, orders.GetProperty("items")[0].GetProperty("id").GetGuid());
    }

    /// <summary>
    /// A table locked in the given mode until disposed. ACCESS EXCLUSIVE on Inventory's reservations stalls every
    /// reservation while the catalog, which Orders needs to accept an order, still answers; SHARE on Orders' orders
    /// stalls the insert of an order while reads go on.
    /// </summary>
    private sealed class TableLock(NpgsqlConnection connection, NpgsqlTransaction transaction) : IAsyncDisposable
    {
        public static async Task<TableLock> TakeAsync(string connectionString, string table, string mode)
        {
            var connection = new NpgsqlConnection(connectionString);
            try
            {
                await connection.OpenAsync(Cancellation);
                var transaction = await connection.BeginTransactionAsync(Cancellation);
                await using var lockTable = new NpgsqlCommand($"LOCK TABLE {table} IN {mode} MODE", connection, transaction);
                await lockTable.ExecuteNonQueryAsync(Cancellation);
                return new TableLock(connection, transaction);
            }
            catch
            {
                await connection.DisposeAsync();
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            await transaction.RollbackAsync(CancellationToken.None);
            await transaction.DisposeAsync();
            await connection.DisposeAsync();
        }
    }
}
