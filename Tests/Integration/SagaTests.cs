using System.Net;
using System.Text.Json;
using Shop.Hosting;
using Shop.ServiceDefaults.Messaging;
using Shop.ServiceDefaults.Messaging.Schemas;

namespace Shop.Tests.Integration;

/// <summary>The order saga against the running system: every path ends in its state with the stock where it belongs.</summary>
[Collection(AppCollection.Name)]
public sealed class SagaTests(AppFixture fixture)
{
    private static readonly TimeSpan SagaTimeout = TimeSpan.FromSeconds(60);

    private DistributedApplication App => fixture.App;

    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    /// <summary>
    /// A page of orders and its total come from one snapshot: a customer's list, read while the customer places orders,
    /// counts exactly the orders it holds. Before, the count and the page had a snapshot each, and an order placed between
    /// them made the total disagree with the items.
    /// </summary>
    [Fact]
    public async Task A_page_of_orders_counts_the_orders_it_holds_while_more_are_placed()
    {
        const int placed = 60;
        var product = await ShopData.CreateProductAsync(App, stock: placed);
        var (customer, _) = await ShopClients.CustomerAsync(App);
        // Read from Orders itself: as often as this reads, the Gateway's per-user limit would answer 429.
        using var orders = App.CreateHttpClient("orders", 0);
        orders.DefaultRequestHeaders.Authorization = customer.DefaultRequestHeaders.Authorization;
        using var placing = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        async Task PlaceAsync()
        {
            try
            {
                for (var i = 0; i < placed; i++)
                {
                    await ShopData.PlaceOrderAsync(customer, product, 1);
                }
            }
            finally
            {
                await placing.CancelAsync();
            }
        }

        var mismatches = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var totals = new System.Collections.Concurrent.ConcurrentDictionary<int, bool>();
        async Task ReadAsync()
        {
            while (!placing.IsCancellationRequested)
            {
                var page = await orders.GetFromJsonAsync<JsonElement>("/v1/orders?pageSize=100", Cancellation);
                var (total, items) = (page.GetProperty("total").GetInt32(), page.GetProperty("items").GetArrayLength());
                totals[total] = true;
                if (total != items)
                {
                    mismatches.Enqueue($"total {total}, {items} items");
                }
            }
        }

        await Task.WhenAll(PlaceAsync(), ReadAsync(), ReadAsync());

        Assert.True(mismatches.IsEmpty, $"{mismatches.Count} pages disagreed with their totals: {string.Join("; ", mismatches.Take(6))}");
        // The list was read while the orders were placed: it saw many totals on the way.
        Assert.True(totals.Count >= 10, string.Join(", ", totals.Keys.Order()));
    }

    [Fact]
    public async Task An_order_is_reserved_paid_and_confirmed_and_its_events_leave_both_services()
    {
        var product = await ShopData.CreateProductAsync(App, stock: 5);
        var (customer, _) = await ShopClients.CustomerAsync(App);
        using var _c = customer;

        var orderId = await ShopData.PlaceOrderAsync(customer, product, 2);
        var order = await ShopData.WaitForOrderAsync(customer, orderId, SagaTimeout, "Paid", "Cancelled", "Failed");

        Assert.Equal("Paid", order.GetProperty("status").GetString());
        Assert.Equal(["Pending", "StockReserved", "Paid"], ShopData.Timeline(order));
        Assert.Equal(21.0m, order.GetProperty("total").GetProperty("amount").GetDecimal());
        Assert.StartsWith("pay_", order.GetProperty("paymentId").GetString());
        Assert.Equal((3, 0), await ShopData.StockAsync(App, product));

        var orderEvents = await ShopData.QueryAsync(App, "ordersdb",
            $"SELECT routing_key FROM outbox_messages WHERE payload->>'aggregateId' = '{orderId}' ORDER BY id", r => r.GetString(0));
        Assert.Equal(["order.created", "order.stock_reserved", "order.paid"], orderEvents);
        var reservationId = order.GetProperty("reservationId").GetString();
        var inventoryEvents = await ShopData.QueryAsync(App, "inventorydb",
            $"SELECT routing_key FROM outbox_messages WHERE payload->>'aggregateId' = '{reservationId}' ORDER BY id", r => r.GetString(0));
        Assert.Equal(["inventory.reserved", "inventory.confirmed"], inventoryEvents);
    }

    [Fact]
    public async Task Inventorys_events_match_their_schemas_including_those_written_by_the_database()
    {
        // Stock-level events are built in SQL (a trigger), so the C# publish-time check does not see them: check here.
        var (product, customer, orderId) = await PaidOrderAsync(stock: 1, quantity: 1);
        using var _c = customer;
        using var cancel = await customer.PostAsync($"/v1/orders/{orderId}/cancel", null, Cancellation);
        await ShopData.WaitForOrderAsync(customer, orderId, SagaTimeout, "Cancelled");

        var payloads = await ShopData.QueryAsync(App, "inventorydb",
            $"SELECT payload::text FROM outbox_messages WHERE payload->'data'->>'productId' = '{product}' OR payload->'data'->>'orderId' = '{orderId}' ORDER BY id",
            r => r.GetString(0));
        var envelopes = payloads.Select(p => JsonSerializer.Deserialize<EventEnvelope>(p, EventEnvelope.JsonOptions)!).ToList();

        Assert.Equal(["inventory.confirmed", "inventory.released", "inventory.reserved", "inventory.stock_depleted", "inventory.stock_replenished"],
            envelopes.Select(e => e.EventType).Order());
        Assert.All(envelopes, e => Assert.Empty(EventSchemas.Validate(e)));
        // A paid order's units were sold: cancelled, they go back on the shelf.
        var released = envelopes.Single(e => e.EventType == "inventory.released").Data;
        Assert.Equal("released", released.GetProperty("reason").GetString());
        Assert.True(released.GetProperty("returned").GetBoolean());
    }

    [Fact]
    public async Task A_declined_payment_releases_the_stock_and_cancels_the_order_with_the_reason()
    {
        // The fake provider declines amounts above its card limit (10,000 by default).
        var product = await ShopData.CreateProductAsync(App, stock: 5, price: 6000m);
        var (customer, _) = await ShopClients.CustomerAsync(App);
        using var _c = customer;

        var orderId = await ShopData.PlaceOrderAsync(customer, product, 2);
        var order = await ShopData.WaitForOrderAsync(customer, orderId, SagaTimeout, "Cancelled", "Paid", "Failed");

        Assert.Equal("Cancelled", order.GetProperty("status").GetString());
        Assert.Equal("payment_declined: card_limit_exceeded", order.GetProperty("statusReason").GetString());
        Assert.Equal(["Pending", "StockReserved", "Cancelled"], ShopData.Timeline(order));
        Assert.False(order.GetProperty("refunded").GetBoolean());
        Assert.Equal((5, 0), await ShopData.StockAsync(App, product));
        Assert.Equal("Released", await ShopData.ScalarAsync<string>(App, "inventorydb", $"SELECT status FROM reservations WHERE order_id = '{orderId}'"));
    }

    [Fact]
    public async Task An_order_for_more_than_the_stock_fails_as_out_of_stock_and_holds_nothing()
    {
        var product = await ShopData.CreateProductAsync(App, stock: 1);
        var (customer, _) = await ShopClients.CustomerAsync(App);
        using var _c = customer;

        var orderId = await ShopData.PlaceOrderAsync(customer, product, 2);
        var order = await ShopData.WaitForOrderAsync(customer, orderId, SagaTimeout, "Failed", "Paid", "Cancelled");

        Assert.Equal("Failed", order.GetProperty("status").GetString());
        Assert.StartsWith("out_of_stock", order.GetProperty("statusReason").GetString());
        Assert.Equal((1, 0), await ShopData.StockAsync(App, product));
        // Inventory took order.failed and closed the order there: a late reservation for it would be refused.
        await ShopData.WaitUntilAsync(async () => await ShopData.ScalarAsync<long>(App, "inventorydb",
            $"SELECT count(*) FROM reservations WHERE order_id = '{orderId}' AND closed") == 1);
    }

    [Fact]
    public async Task Cancelling_a_paid_order_refunds_it_and_puts_the_units_back_and_a_cancelled_order_cannot_ship()
    {
        var (product, customer, orderId) = await PaidOrderAsync(stock: 5, quantity: 2);
        using var _c = customer;
        using var admin = await ShopClients.AdminAsync(App);
        Assert.Equal((3, 0), await ShopData.StockAsync(App, product));

        using var cancel = await customer.PostAsync($"/v1/orders/{orderId}/cancel", null, Cancellation);
        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        var order = await ShopData.WaitForOrderAsync(customer, orderId, SagaTimeout, "Cancelled");

        Assert.Equal("cancelled_by_customer", order.GetProperty("statusReason").GetString());
        Assert.True(order.GetProperty("refunded").GetBoolean());
        Assert.Equal(["Pending", "StockReserved", "Paid", "Cancelled"], ShopData.Timeline(order));
        Assert.Equal((5, 0), await ShopData.StockAsync(App, product));
        Assert.Equal("Refunded", await ShopData.ScalarAsync<string>(App, "ordersdb", $"SELECT status FROM fake_payments WHERE order_id = '{orderId}'"));

        using var again = await customer.PostAsync($"/v1/orders/{orderId}/cancel", null, Cancellation);
        Assert.Equal(HttpStatusCode.Accepted, again.StatusCode);
        using var ship = await admin.PostAsync($"/v1/orders/{orderId}/ship", null, Cancellation);
        Assert.Equal(HttpStatusCode.Conflict, ship.StatusCode);
        Assert.Equal("application/problem+json", ship.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task A_cancel_that_comes_while_the_stock_is_being_reserved_has_the_saga_release_the_reservation_it_got()
    {
        var product = await ShopData.CreateProductAsync(App, stock: 5);
        var (customer, _) = await ShopClients.CustomerAsync(App);
        using var _c = customer;

        // The product's stock row held: the saga's reservation waits on it, with the order still Pending.
        await using var connection = new Npgsql.NpgsqlConnection(App.GetConnectionString("inventorydb"));
        await connection.OpenAsync(Cancellation);
        await using var hold = await connection.BeginTransactionAsync(Cancellation);
        await using (var lockRow = new Npgsql.NpgsqlCommand($"SELECT 1 FROM stock WHERE product_id = '{product}' FOR UPDATE", connection, hold))
        {
            await lockRow.ExecuteScalarAsync(Cancellation);
        }

        var placing = $"placing-{Guid.NewGuid():N}";
        var cancelling = $"cancelling-{Guid.NewGuid():N}";
        customer.DefaultRequestHeaders.Add("X-Correlation-ID", placing);
        var orderId = await ShopData.PlaceOrderAsync(customer, product, 2);
        await ShopData.WaitUntilAsync("the reservation to wait for the held stock row", async () =>
            await ShopData.LockWaitersAsync(App, "inventorydb", "%stock%") >= 1, seconds: 30);
        customer.DefaultRequestHeaders.Remove("X-Correlation-ID");
        customer.DefaultRequestHeaders.Add("X-Correlation-ID", cancelling);
        using (var cancel = await customer.PostAsync($"/v1/orders/{orderId}/cancel", null, Cancellation))
        {
            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        }

        await hold.RollbackAsync(Cancellation);
        var order = await ShopData.WaitForOrderAsync(customer, orderId, SagaTimeout, "Cancelled");

        // The reservation Inventory made is the order's, and the saga released it itself ("released"). Before, the saga
        // dropped it, and the units stayed held until order.cancelled reached Inventory ("order_cancelled") or it expired.
        Assert.Equal("Released:released", await ShopData.ScalarAsync<string>(App, "inventorydb",
            $"SELECT status || ':' || coalesce(release_reason, '') FROM reservations WHERE order_id = '{orderId}'"));
        Assert.Equal((5, 0), await ShopData.StockAsync(App, product));
        Assert.Equal("cancelled_by_customer", order.GetProperty("statusReason").GetString());

        // The cancellation came while the saga ran in the placing request's correlation; what it did after (release the
        // reservation, cancel the order) is the cancelling request's work and carries its correlation id. Before, the
        // saga kept the context it was claimed with until it ended.
        Assert.Equal($"order.created {placing}|order.cancelled {cancelling}", string.Join('|', await ShopData.QueryAsync(App, "ordersdb",
            $"SELECT routing_key || ' ' || COALESCE(payload->>'correlationId', '-') FROM outbox_messages WHERE payload->>'aggregateId' = '{orderId}' ORDER BY id",
            r => r.GetString(0))));
        Assert.Equal(cancelling, await ShopData.ScalarAsync<string>(App, "inventorydb", $"""
            SELECT payload->>'correlationId' FROM outbox_messages
            WHERE routing_key = 'inventory.released' AND payload->'data'->>'orderId' = '{orderId}'
            """));
    }

    [Fact]
    public async Task Only_an_admin_ships_only_a_paid_order_and_a_shipped_order_cannot_be_cancelled()
    {
        var product = await ShopData.CreateProductAsync(App, stock: 5);
        var (customer, _) = await ShopClients.CustomerAsync(App);
        using var _c = customer;
        var (stranger, _) = await ShopClients.CustomerAsync(App);
        using var _s = stranger;
        using var admin = await ShopClients.AdminAsync(App);
        var orderId = await ShopData.PlaceOrderAsync(customer, product, 1);
        await ShopData.WaitForOrderAsync(customer, orderId, SagaTimeout, "Paid");

        using (var byCustomer = await customer.PostAsync($"/v1/orders/{orderId}/ship", null, Cancellation))
        {
            Assert.Equal(HttpStatusCode.Forbidden, byCustomer.StatusCode);
        }

        using (var strangerCancel = await stranger.PostAsync($"/v1/orders/{orderId}/cancel", null, Cancellation))
        {
            Assert.Equal(HttpStatusCode.NotFound, strangerCancel.StatusCode);
        }

        using (var shipped = await admin.PostAsync($"/v1/orders/{orderId}/ship", null, Cancellation))
        {
            Assert.Equal(HttpStatusCode.OK, shipped.StatusCode);
        }

        using var cancel = await customer.PostAsync($"/v1/orders/{orderId}/cancel", null, Cancellation);
        Assert.Equal(HttpStatusCode.Conflict, cancel.StatusCode);
        var order = await ShopData.WaitForOrderAsync(customer, orderId, SagaTimeout, "Shipped");
        Assert.Equal(["Pending", "StockReserved", "Paid", "Shipped"], ShopData.Timeline(order));
        Assert.Equal((4, 0), await ShopData.StockAsync(App, product));

        using var v1 = await customer.GetAsync($"/v1/orders/{orderId}", Cancellation);
        var body = await v1.Content.ReadFromJsonAsync<JsonElement>(Cancellation);
        Assert.Equal("Shipped", body.GetProperty("status").GetString());
        Assert.Equal(10.5m, body.GetProperty("total").GetDecimal());
    }

    [Fact]
    public async Task Two_hundred_customers_ordering_the_last_ten_units_at_once_leave_ten_paid_and_nothing_held()
    {
        var product = await ShopData.CreateProductAsync(App, stock: 10);
        using var crowd = await ShopClients.CustomersAsync(App, 200);
        var customers = crowd.Clients;
        // Two hundred at once on two cores may time a dependency out (503, never a 500): each customer retries it with
        // the same Idempotency-Key, as a careful client does, so each order is still placed once.
        var started = DateTimeOffset.UtcNow;
        Guid[] orders;
        try
        {
            orders = await Task.WhenAll(customers.Select(c => ShopData.PlaceOrderRetryingAsync(c, product, 1)));
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A CI run failed here once with only the answers to go on (503s, then 409s): the services' own account goes with it.
            string warnings;
            try
            {
                warnings = await ShopData.WarningsSinceAsync(App, started, "gateway", "orders", "inventory");
            }
            catch (Exception unread)
            {
                warnings = $"(not read: {unread.Message})";
            }

            throw new Xunit.Sdk.XunitException($"{ex.Message}\nWarnings logged since the orders were placed:\n{warnings}", ex);
        }

        var outcomes = await Task.WhenAll(orders.Select((id, i) =>
            ShopData.WaitForOrderAsync(customers[i], id, TimeSpan.FromMinutes(3), "Paid", "Failed", "Cancelled")));

        var statuses = outcomes.Select(o => o.GetProperty("status").GetString()).ToList();
        Assert.Equal(10, statuses.Count(s => s == "Paid"));
        Assert.Equal(190, statuses.Count(s => s == "Failed"));
        Assert.All(outcomes.Where(o => o.GetProperty("status").GetString() == "Failed"),
            o => Assert.StartsWith("out_of_stock", o.GetProperty("statusReason").GetString()));
        Assert.Equal((0, 0), await ShopData.StockAsync(App, product));
    }

    [Fact]
    public async Task Notifications_follow_the_orders_history_and_ignore_an_event_older_than_one_applied()
    {
        var (_, customer, orderId) = await PaidOrderAsync(stock: 5, quantity: 1);
        using var _c = customer;
        using var admin = await ShopClients.AdminAsync(App);
        await ShopData.WaitUntilAsync(async () => (await KindsAsync(orderId)).SequenceEqual(["order-paid", "order-received"]));

        // A late event from the order's past (version 2 < 4 already applied) arrives: it is consumed, and dropped.
        var stale = new EventEnvelope(Guid.CreateVersion7(), "order.failed", 1, DateTimeOffset.UtcNow, "demo", orderId.ToString(), 2, null, null, null,
            JsonSerializer.SerializeToElement(new { orderId, reason = "out_of_stock: late", reservationId = (Guid?)null }, EventEnvelope.JsonOptions));
        await ShopData.PublishAsync(App, stale);
        await ShopData.WaitUntilAsync(async () => await ShopData.ScalarAsync<long>(App, "notificationsdb",
            $"SELECT count(*) FROM inbox_messages WHERE event_id = '{stale.EventId}'") == 1);
        Assert.Equal(["order-paid", "order-received"], await KindsAsync(orderId));

        // A newer one takes effect.
        using (var shipped = await admin.PostAsync($"/v1/orders/{orderId}/ship", null, Cancellation))
        {
            Assert.Equal(HttpStatusCode.OK, shipped.StatusCode);
        }

        await ShopData.WaitUntilAsync(async () => (await KindsAsync(orderId)).SequenceEqual(["order-paid", "order-received", "order-shipped"]));

        // Each is the tenant's data, as every business row is (before, they carried no tenant).
        Assert.Equal(["demo"], await ShopData.QueryAsync(App, "notificationsdb",
            $"SELECT DISTINCT coalesce(tenant_id, '(none)') FROM notifications WHERE subject_id = '{orderId}'", r => r.GetString(0)));
    }

    [Fact]
    public async Task An_order_created_event_that_arrives_after_a_later_event_of_its_order_still_tells_the_customer_it_was_received()
    {
        // As when order.created failed once and its retry came back after order.paid had been applied.
        var orderId = Guid.NewGuid();
        var paid = new EventEnvelope(Guid.CreateVersion7(), "order.paid", 1, DateTimeOffset.UtcNow, "demo", orderId.ToString(), 3, null, null, null,
            JsonSerializer.SerializeToElement(new { orderId, paymentId = "pay-late-created", amount = 10.5m, currency = "EUR" }, EventEnvelope.JsonOptions));
        var created = new EventEnvelope(Guid.CreateVersion7(), "order.created", 1, DateTimeOffset.UtcNow, "demo", orderId.ToString(), 1, null, null, null,
            JsonSerializer.SerializeToElement(new
            {
                orderId,
                customerId = Guid.NewGuid().ToString(),
                total = 10.5m,
                currency = "EUR",
                items = new[] { new { productId = Guid.NewGuid(), quantity = 1, unitPrice = 10.5m } },
            }, EventEnvelope.JsonOptions));

        foreach (var envelope in new[] { paid, created })
        {
            await ShopData.PublishAsync(App, envelope);
            await ShopData.WaitUntilAsync(async () => await ShopData.ScalarAsync<long>(App, "notificationsdb",
                $"SELECT count(*) FROM inbox_messages WHERE event_id = '{envelope.EventId}'") == 1);
        }

        // Before, the late order.created was dropped as older than order.paid, and the order was never "received".
        Assert.Equal(["order-paid", "order-received"], await KindsAsync(orderId));
    }

    /// <summary>
    /// The saga carries on the work of the request that placed the order, and then of the one that cancelled it: its
    /// events, its calls to Inventory and the stock events those raise all carry that request's correlation id and trace.
    /// Before, the saga ran in no trace and no correlation: every event after order.created had neither, and each call to
    /// Inventory was given a new correlation id of its own.
    /// </summary>
    [Fact]
    public async Task An_orders_saga_carries_the_correlation_and_trace_of_the_request_that_placed_it_then_of_the_one_that_cancelled_it()
    {
        var product = await ShopData.CreateProductAsync(App, stock: 2);
        var (customer, _) = await ShopClients.CustomerAsync(App);
        using var _c = customer;
        var placing = $"placing-{Guid.NewGuid():N}";
        Guid orderId;
        using (var place = new HttpRequestMessage(HttpMethod.Post, "/v1/orders")
        {
            Content = JsonContent.Create(new { items = new[] { new { productId = product, quantity = 2 } } }),
        })
        {
            place.Headers.Add("X-Correlation-ID", placing);
            place.Headers.Add("Idempotency-Key", Guid.NewGuid().ToString("N"));
            using var placed = await customer.SendAsync(place, Cancellation);
            Assert.Equal(HttpStatusCode.Accepted, placed.StatusCode);
            orderId = (await placed.Content.ReadFromJsonAsync<JsonElement>(Cancellation)).GetProperty("id").GetGuid();
        }

        var order = await ShopData.WaitForOrderAsync(customer, orderId, SagaTimeout, "Paid", "Cancelled", "Failed");
        Assert.Equal("Paid", order.GetProperty("status").GetString());
        var cancelling = $"cancelling-{Guid.NewGuid():N}";
        using (var cancel = new HttpRequestMessage(HttpMethod.Post, $"/v1/orders/{orderId}/cancel"))
        {
            cancel.Headers.Add("X-Correlation-ID", cancelling);
            using var cancelled = await customer.SendAsync(cancel, Cancellation);
            Assert.Equal(HttpStatusCode.Accepted, cancelled.StatusCode);
        }

        await ShopData.WaitForOrderAsync(customer, orderId, SagaTimeout, "Cancelled");
        // Each event: its type, its correlation id and the trace it belongs to (the traceparent's trace id).
        const string Traced = "routing_key || ' ' || COALESCE(payload->>'correlationId', '-') || ' ' || COALESCE(substr(payload->>'traceParent', 4, 32), '-')";
        var orderEvents = await ShopData.QueryAsync(App, "ordersdb",
            $"SELECT {Traced} FROM outbox_messages WHERE payload->>'aggregateId' = '{orderId}' ORDER BY id", r => r.GetString(0).Split(' '));
        var reservation = order.GetProperty("reservationId").GetString();
        var inventoryEvents = await ShopData.QueryAsync(App, "inventorydb", $"""
            SELECT {Traced} FROM outbox_messages
            WHERE payload->>'aggregateId' IN ('{reservation}', '{product}')
            ORDER BY id
            """, r => r.GetString(0).Split(' '));

        Assert.Equal(["order.created", "order.stock_reserved", "order.paid", "order.cancelled"], orderEvents.Select(e => e[0]));
        // The stock's own events are written by a trigger at the end of the statement that changed the stock row: after
        // inventory.reserved, which the reserving statement writes itself, and before inventory.released, which a later statement writes.
        Assert.Equal(["inventory.reserved", "inventory.stock_depleted", "inventory.confirmed", "inventory.stock_replenished", "inventory.released"],
            inventoryEvents.Select(e => e[0]));
        // No step fails here, so each is a first attempt, a child of its request's trace (a retry would start its own).
        var placedTrace = orderEvents[0][2];
        Assert.Matches("^[0-9a-f]{32}$", placedTrace);
        var placement = orderEvents.Take(3).Concat(inventoryEvents.Take(3)).ToList();
        var cancellation = orderEvents.Skip(3).Concat(inventoryEvents.Skip(3)).ToList();
        Assert.All(placement, e => Assert.Equal($"{e[0]} {placing} {placedTrace}", string.Join(' ', e)));
        var cancelledTrace = cancellation[0][2];
        Assert.Matches("^[0-9a-f]{32}$", cancelledTrace);
        Assert.NotEqual(placedTrace, cancelledTrace);
        Assert.All(cancellation, e => Assert.Equal($"{e[0]} {cancelling} {cancelledTrace}", string.Join(' ', e)));
    }

    private async Task<List<string>> KindsAsync(Guid orderId) =>
        await ShopData.QueryAsync(App, "notificationsdb", $"SELECT kind FROM notifications WHERE subject_id = '{orderId}' ORDER BY kind", r => r.GetString(0));

    /// <summary>A new product, and a signed-in customer (to dispose) whose order for it has been paid.</summary>
    private async Task<(Guid Product, HttpClient Customer, Guid OrderId)> PaidOrderAsync(int stock, int quantity)
    {
        var product = await ShopData.CreateProductAsync(App, stock);
        var (customer, _) = await ShopClients.CustomerAsync(App);
        var orderId = await ShopData.PlaceOrderAsync(customer, product, quantity);
        await ShopData.WaitForOrderAsync(customer, orderId, SagaTimeout, "Paid");
        return (product, customer, orderId);
    }
}
