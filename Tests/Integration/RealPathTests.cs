using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Npgsql;
using Shop.Hosting;

namespace Shop.Tests.Integration;

[Collection(AppCollection.Name)]
public sealed class RealPathTests(AppFixture fixture)
{
    private DistributedApplication App => fixture.App;

    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    [Fact]
    public async Task An_order_placed_through_the_gateway_is_priced_by_inventory_stored_and_announced_to_notifications_in_one_trace()
    {
        using var gateway = (await ShopClients.CustomerAsync(App)).Client;
        var product = await FirstProductAsync(gateway);
        var traceId = ActivityTraceId.CreateRandom();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/orders")
        {
            Content = JsonContent.Create(new { items = new[] { new { productId = product.GetProperty("id").GetGuid(), quantity = 3 } } }),
        };
        request.Headers.Add("traceparent", $"00-{traceId}-{ActivitySpanId.CreateRandom()}-01");
        request.Headers.Add("X-Correlation-ID", "real-path-test");
        request.Headers.Add("Idempotency-Key", Guid.NewGuid().ToString("N"));

        using var created = await gateway.SendAsync(request, Cancellation);

        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        Assert.Equal("real-path-test", created.Headers.GetValues("X-Correlation-ID").Single());
        var order = await created.Content.ReadFromJsonAsync<JsonElement>(Cancellation);
        var orderId = order.GetProperty("id").GetGuid();
        var unitPrice = product.GetProperty("price").GetProperty("amount").GetDecimal();
        Assert.Equal(unitPrice * 3, order.GetProperty("total").GetDecimal());
        Assert.Equal($"/v1/orders/{orderId}", created.Headers.Location?.ToString());

        using var read = await gateway.GetAsync(created.Headers.Location, Cancellation);
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);

        var notificationTrace = await WaitForNotificationTraceAsync(orderId);
        Assert.Equal(traceId.ToString(), notificationTrace);

        var services = await WaitForTraceServicesAsync(traceId.ToString(), ["gateway", "orders", "inventory", "notifications"]);
        Assert.Superset(new HashSet<string> { "gateway", "orders", "inventory", "notifications" }, services);
    }

    [Fact]
    public async Task An_event_published_twice_takes_effect_once_in_notifications()
    {
        using var gateway = (await ShopClients.CustomerAsync(App)).Client;
        var product = await FirstProductAsync(gateway);
        using var created = await gateway.PostOrderAsync(new { items = new[] { new { productId = product.GetProperty("id").GetGuid(), quantity = 1 } } });
        var orderId = (await created.Content.ReadFromJsonAsync<JsonElement>(Cancellation)).GetProperty("id").GetGuid();
        await WaitForNotificationTraceAsync(orderId);

        // Publish the very same outbox row again, as a relay that crashed before marking it sent would.
        Guid eventId;
        await using (var orders = new NpgsqlConnection(App.GetConnectionString("ordersdb")))
        {
            await orders.OpenAsync(Cancellation);
            await using var replay = new NpgsqlCommand(
                "UPDATE outbox_messages SET sent_at = NULL WHERE payload->'data'->>'orderId' = $1 AND routing_key = 'order.created' RETURNING event_id", orders);
            replay.Parameters.Add(new() { Value = orderId.ToString() });
            eventId = (Guid)(await replay.ExecuteScalarAsync(Cancellation))!;
        }

        // Until Notifications has taken the second copy (before, a fixed second, which a slow machine could pass unread).
        await ShopData.WaitForLogAsync(App, "notifications", $"Event {eventId} was already processed");

        Assert.Equal(1L, await ScalarAsync<long>("notificationsdb",
            $"SELECT count(*) FROM notifications WHERE subject_id = '{orderId}' AND kind = 'order-received'"));
    }

    [Theory]
    [InlineData("""{"items":[]}""", "application/json", 400)]
    [InlineData("""{"items":[null]}""", "application/json", 400)]
    [InlineData("""{"items":[{"productId":"00000000-0000-0000-0000-000000000001","quantity":1}]}""", "application/json", 422)]
    [InlineData("""{"items":[{"productId":"00000000-0000-0000-0000-000000000001","quantity":0}]}""", "application/json", 400)]
    [InlineData("""{"items":[{"productId":"00000000-0000-0000-0000-000000000001","quantity":100000}]}""", "application/json", 400)]
    [InlineData("""{"items": [""", "application/json", 400)]
    [InlineData("""{"items":[{"productId":"not-a-guid","quantity":1}]}""", "application/json", 400)]
    [InlineData("""items=1""", "application/x-www-form-urlencoded", 415)]
    public async Task Bad_order_requests_get_problem_details_with_trace_and_correlation_ids(string body, string contentType, int status)
    {
        using var gateway = (await ShopClients.CustomerAsync(App)).Client;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/orders") { Content = new StringContent(body, System.Text.Encoding.UTF8, contentType) };
        request.Headers.Add("Idempotency-Key", Guid.NewGuid().ToString("N"));

        using var response = await gateway.SendAsync(request, Cancellation);

        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>(Cancellation);
        Assert.Equal(status, problem.GetProperty("status").GetInt32());
        Assert.Equal(32, problem.GetProperty("traceId").GetString()!.Length);
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("correlationId").GetString()));
    }

    [Fact]
    public async Task A_client_that_accepts_no_json_still_gets_the_status_of_each_refusal_never_a_500()
    {
        using var customer = (await ShopClients.CustomerAsync(App)).Client;
        using var anonymous = ShopClients.Anonymous(App);
        var product = (await FirstProductAsync(customer)).GetProperty("id").GetGuid();

        async Task<HttpStatusCode> SendAsync(HttpClient client, HttpMethod method, string path, string? body, string? key = null)
        {
            using var request = new HttpRequestMessage(method, path);
            request.Headers.Accept.ParseAdd("text/plain");
            if (body is not null)
            {
                request.Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
            }

            if (key is not null)
            {
                request.Headers.Add("Idempotency-Key", key);
            }

            using var response = await client.SendAsync(request, Cancellation);
            return response.StatusCode;
        }

        var order = $$"""{"items":[{"productId":"{{product}}","quantity":1}]}""";
        Assert.Equal(HttpStatusCode.Unauthorized, await SendAsync(anonymous, HttpMethod.Get, "/v1/orders", null));
        Assert.Equal(HttpStatusCode.Forbidden, await SendAsync(customer, HttpMethod.Post, "/v1/products", "{}"));
        // Refused by Orders' Idempotency-Key handling: no key; then one key reused for another body.
        Assert.Equal(HttpStatusCode.BadRequest, await SendAsync(customer, HttpMethod.Post, "/v1/orders", order));
        var key = Guid.NewGuid().ToString("N");
        Assert.Equal(HttpStatusCode.Accepted, await SendAsync(customer, HttpMethod.Post, "/v1/orders", order, key));
        Assert.Equal(HttpStatusCode.UnprocessableEntity,
            await SendAsync(customer, HttpMethod.Post, "/v1/orders", order.Replace("\"quantity\":1", "\"quantity\":2"), key));
        // Refused by the Gateway's request guard: a NUL in the query string cannot be stored.
        Assert.Equal(HttpStatusCode.BadRequest, await SendAsync(customer, HttpMethod.Get, "/v1/products?search=%00", null));
    }

    [Theory]
    [InlineData("/v1/products/00000000-0000-0000-0000-000000000001")] // an empty 404 from the endpoint, dressed by the status-code pages
    [InlineData("/v1/inventory/not-a-guid")] // no route matched in Inventory
    [InlineData("/v1/no-such-resource")] // no route matched in the Gateway
    public async Task An_error_answered_outside_the_request_flow_carries_the_caller_correlation_id(string path)
    {
        using var gateway = (await ShopClients.CustomerAsync(App)).Client;
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        var correlation = $"corr-{Guid.NewGuid():N}";
        request.Headers.Add("X-Correlation-ID", correlation);

        using var response = await gateway.SendAsync(request, Cancellation);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal(correlation, response.Headers.GetValues("X-Correlation-ID").Single());
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>(Cancellation);
        Assert.Equal(correlation, problem.GetProperty("correlationId").GetString());
    }

    [Theory]
    [InlineData("/v1/orders?page=2147483647", "page")]
    [InlineData("/v2/orders?page=2147483647", "page")]
    [InlineData("/v1/orders?pageSize=0", "pageSize")]
    [InlineData("/v1/products?page=2147483647", "page")]
    [InlineData("/v1/products?pageSize=101", "pageSize")]
    [InlineData("/v1/inventory/00000000-0000-0000-0000-000000000001/adjustments?page=0", "page")]
    [InlineData("/v1/orders?status=StockReserved,Paid", "status")] // before, 1 | 2: the Shipped orders
    [InlineData("/v2/orders?status=3", "status")]
    [InlineData("/v1/products?after=%21", "after")]
    public async Task A_page_or_filter_out_of_bounds_is_a_400_naming_its_field_in_every_list(string path, string field)
    {
        using var admin = await ShopClients.AdminAsync(App);

        using var response = await admin.GetAsync(path, Cancellation);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var errors = (await response.Content.ReadFromJsonAsync<JsonElement>(Cancellation)).GetProperty("errors");
        Assert.Equal([field], errors.EnumerateObject().Select(e => e.Name));
    }

    [Fact]
    public async Task Unknown_ids_are_404_problem_details_through_the_gateway()
    {
        using var gateway = (await ShopClients.CustomerAsync(App)).Client;

        using var product = await gateway.GetAsync($"/v1/products/{Guid.NewGuid()}", Cancellation);
        using var order = await gateway.GetAsync($"/v1/orders/{Guid.NewGuid()}", Cancellation);

        Assert.Equal(HttpStatusCode.NotFound, product.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, order.StatusCode);
        Assert.Equal("application/problem+json", order.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Fifty_parallel_orders_with_one_key_and_body_create_exactly_one_order_and_replay_it()
    {
        using var gateway = (await ShopClients.CustomerAsync(App)).Client;
        var product = await FirstProductAsync(gateway);
        var body = new { items = new[] { new { productId = product.GetProperty("id").GetGuid(), quantity = 2 } } };
        var key = Guid.NewGuid().ToString("N");

        var responses = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => gateway.PostOrderAsync(body, key)));
        var bodies = await Task.WhenAll(responses.Select(r => r.Content.ReadAsStringAsync(Cancellation)));

        var accepted = responses.Select((r, i) => (r, i)).Where(x => x.r.StatusCode == HttpStatusCode.Accepted).ToList();
        Assert.All(responses, r => Assert.Contains(r.StatusCode, new[] { HttpStatusCode.Accepted, HttpStatusCode.Conflict }));
        Assert.Single(accepted, x => !x.r.Headers.Contains("Idempotent-Replayed"));
        var first = bodies[accepted.Single(x => !x.r.Headers.Contains("Idempotent-Replayed")).i];
        Assert.All(accepted, x => Assert.Equal(first, bodies[x.i]));
        var orders = await gateway.GetFromJsonAsync<JsonElement>("/v1/orders", Cancellation);
        Assert.Equal(1, orders.GetProperty("total").GetInt32());

        using var replay = await gateway.PostOrderAsync(body, key);
        Assert.Equal(HttpStatusCode.Accepted, replay.StatusCode);
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(first, await replay.Content.ReadAsStringAsync(Cancellation));
        Assert.Equal(accepted[0].r.Headers.Location, replay.Headers.Location);

        using var otherBody = await gateway.PostOrderAsync(new { items = new[] { new { productId = product.GetProperty("id").GetGuid(), quantity = 3 } } }, key);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, otherBody.StatusCode);
        foreach (var response in responses)
        {
            response.Dispose();
        }
    }

    [Fact]
    public async Task An_order_without_an_idempotency_key_is_refused_with_400()
    {
        using var gateway = (await ShopClients.CustomerAsync(App)).Client;
        var product = await FirstProductAsync(gateway);

        using var response = await gateway.PostAsJsonAsync("/v1/orders",
            new { items = new[] { new { productId = product.GetProperty("id").GetGuid(), quantity = 1 } } }, Cancellation);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("Idempotency-Key", (await response.Content.ReadFromJsonAsync<JsonElement>(Cancellation)).GetProperty("title").GetString(), StringComparison.Ordinal);
    }

    private static async Task<JsonElement> FirstProductAsync(HttpClient gateway)
    {
        var page = await gateway.GetFromJsonAsync<JsonElement>("/v1/products?active=true&pageSize=5", Cancellation);
        return page.GetProperty("items").EnumerateArray().First();
    }

    private async Task<string?> WaitForNotificationTraceAsync(Guid orderId)
    {
        string? trace = null;
        await WaitUntilAsync(async () =>
        {
            trace = await ScalarAsync<string>("notificationsdb",
                $"SELECT trace_id FROM notifications WHERE subject_id = '{orderId}' AND kind = 'order-received'");
            return trace is not null;
        });
        return trace;
    }

    private async Task<HashSet<string>> WaitForTraceServicesAsync(string traceId, IReadOnlyCollection<string> expected)
    {
        using var dashboard = new HttpClient { BaseAddress = App.DashboardUrl };
        var services = new HashSet<string>();
        await WaitUntilAsync(async () =>
        {
            using var response = await dashboard.GetAsync($"/api/traces/{traceId}", Cancellation);
            if (response.IsSuccessStatusCode)
            {
                var trace = await response.Content.ReadFromJsonAsync<JsonElement>(Cancellation);
                services = trace.GetProperty("spans").EnumerateArray().Select(s => s.GetProperty("service").GetString()!).ToHashSet();
            }

            return expected.All(services.Contains);
        });
        return services;
    }

    private async Task<T?> ScalarAsync<T>(string database, string sql)
    {
        await using var connection = new NpgsqlConnection(App.GetConnectionString(database));
        await connection.OpenAsync(Cancellation);
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync(Cancellation) is T value ? value : default;
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "The condition did not hold within 30 s.");
            await Task.Delay(200, Cancellation);
        }
    }
}
