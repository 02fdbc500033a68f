using System.Net;
using System.Text.Json;
using Npgsql;
using RabbitMQ.Client;
using Shop.ServiceDefaults.Messaging;
using Shop.Hosting;

namespace Shop.Tests.Integration;

/// <summary>Test data through the public API, and reads of the databases to check what the API cannot show.</summary>
internal static class ShopData
{
    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    /// <summary>A new product of tenant demo with the given stock, created by the admin through the Gateway.</summary>
    public static async Task<Guid> CreateProductAsync(DistributedApplication app, int stock, decimal price = 10.5m)
    {
        using var admin = await ShopClients.AdminAsync(app);
        using var response = await admin.PostAsJsonAsync("/v1/products",
            new { sku = $"SKU-{Guid.NewGuid():N}", name = "Saga product", description = "", price = new { amount = price, currency = "EUR" }, initialStock = stock },
            Cancellation);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>(Cancellation)).GetProperty("id").GetGuid();
    }

    /// <summary>
    /// Places an order as a careful client does: a 503 (a dependency timed out under load) is retried with the same
    /// Idempotency-Key, so the order is created at most once whatever happened to the first attempt.
    /// </summary>
    public static async Task<Guid> PlaceOrderRetryingAsync(HttpClient customer, Guid product, int quantity, int attempts = 5)
    {
        var key = Guid.NewGuid().ToString("N");
        for (var attempt = 1; ; attempt++)
        {
            using var response = await customer.PostOrderAsync(new { items = new[] { new { productId = product, quantity } } }, key);
            if (response.StatusCode is HttpStatusCode.ServiceUnavailable or HttpStatusCode.Conflict && attempt < attempts)
            {
                // Said in the test's output, so that a run shows how often a careful client had to retry.
                TestContext.Current.TestOutputHelper?.WriteLine(
                    $"POST /v1/orders answered {(int)response.StatusCode} on attempt {attempt}, retried: {await response.Content.ReadAsStringAsync(Cancellation)}");
                await Task.Delay(TimeSpan.FromSeconds(attempt), Cancellation);
                continue;
            }

            Assert.True(response.StatusCode == HttpStatusCode.Accepted,
                $"POST /v1/orders answered {(int)response.StatusCode} on attempt {attempt}: {await response.Content.ReadAsStringAsync(Cancellation)}");
            return (await response.Content.ReadFromJsonAsync<JsonElement>(Cancellation)).GetProperty("id").GetGuid();
        }
    }

    public static async Task<Guid> PlaceOrderAsync(HttpClient customer, Guid product, int quantity)
    {
        using var response = await customer.PostOrderAsync(new { items = new[] { new { productId = product, quantity } } });
        Assert.True(response.StatusCode == HttpStatusCode.Accepted,
            $"POST /v1/orders answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(Cancellation)}");
        return (await response.Content.ReadFromJsonAsync<JsonElement>(Cancellation)).GetProperty("id").GetGuid();
    }

    /// <summary>Polls the v2 read model until the order reaches one of <paramref name="statuses"/>, and returns it.</summary>
    public static async Task<JsonElement> WaitForOrderAsync(HttpClient client, Guid orderId, TimeSpan timeout, params string[] statuses)
    {
        var deadline = DateTime.UtcNow + timeout;
        JsonElement order = default;
        while (DateTime.UtcNow < deadline)
        {
            using var response = await client.GetAsync($"/v2/orders/{orderId}", Cancellation);
            if (response.IsSuccessStatusCode)
            {
                order = await response.Content.ReadFromJsonAsync<JsonElement>(Cancellation);
                if (statuses.Contains(order.GetProperty("status").GetString()) && !order.GetProperty("cancellationPending").GetBoolean())
                {
                    return order;
                }
            }

            await Task.Delay(200, Cancellation);
        }

        throw new TimeoutException($"Order {orderId} did not reach {string.Join("/", statuses)}; last seen: {order}");
    }

    public static async Task<(int Quantity, int Reserved)> StockAsync(DistributedApplication app, Guid product)
    {
        var row = await QueryAsync(app, "inventorydb", $"SELECT quantity, reserved FROM stock WHERE product_id = '{product}'", r => (r.GetInt32(0), r.GetInt32(1)));
        return row.Single();
    }

    /// <summary>Polls until the stock of <paramref name="product"/> is as expected (releases by event are asynchronous).</summary>
    public static async Task WaitForStockAsync(DistributedApplication app, Guid product, (int Quantity, int Reserved) expected, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var seen = await StockAsync(app, product);
        while (seen != expected && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200, Cancellation);
            seen = await StockAsync(app, product);
        }

        Assert.Equal(expected, seen);
    }

    public static async Task<List<T>> QueryAsync<T>(DistributedApplication app, string database, string sql, Func<NpgsqlDataReader, T> read)
    {
        await using var connection = new NpgsqlConnection(app.GetConnectionString(database));
        await connection.OpenAsync(Cancellation);
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync(Cancellation);
        var rows = new List<T>();
        while (await reader.ReadAsync(Cancellation))
        {
            rows.Add(read(reader));
        }

        return rows;
    }

    public static async Task<T> ScalarAsync<T>(DistributedApplication app, string database, string sql) =>
        (await QueryAsync(app, database, sql, r => r.GetFieldValue<T>(0))).Single();

    /// <summary>How many statements of <paramref name="database"/> whose text is like <paramref name="pattern"/> (ILIKE) wait for a lock now.</summary>
    public static Task<long> LockWaitersAsync(DistributedApplication app, string database, string pattern) => ScalarAsync<long>(app, database,
        $"SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE '{pattern}'");

    /// <summary>Polls <paramref name="condition"/> until it holds, failing after <paramref name="seconds"/> with what was awaited.</summary>
    public static async Task WaitUntilAsync(string what, Func<Task<bool>> condition, int seconds = 90)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(seconds);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"Not within {seconds} s: {what}.");
            await Task.Delay(250, Cancellation);
        }
    }

    public static Task WaitUntilAsync(Func<Task<bool>> condition) => WaitUntilAsync("the condition", condition);

    /// <summary>The last 5,000 lines of <paramref name="resource"/>'s log (every replica's), as the dashboard keeps them.</summary>
    public static async Task<List<string>> LogLinesAsync(DistributedApplication app, string resource)
    {
        using var dashboard = new HttpClient { BaseAddress = app.DashboardUrl };
        return [.. (await dashboard.GetFromJsonAsync<JsonElement>($"/api/resources/{resource}/logs?tail=5000", Cancellation)).EnumerateArray()
            .Select(line => line.GetProperty("text").GetString()!)];
    }

    /// <summary>
    /// The warnings and errors <paramref name="resources"/> logged since <paramref name="since"/>, one line per kind (resource,
    /// category, message and the exception's first line) with how often and when first: what a failed load test says about
    /// why, when its own answers (a 503, a 409) do not.
    /// </summary>
    public static async Task<string> WarningsSinceAsync(DistributedApplication app, DateTimeOffset since, params string[] resources)
    {
        var kinds = new List<(DateTimeOffset At, string Kind)>();
        foreach (var resource in resources)
        {
            foreach (var line in await LogLinesAsync(app, resource))
            {
                JsonElement root;
                try
                {
                    root = JsonSerializer.Deserialize<JsonElement>(line);
                }
                catch (JsonException)
                {
                    // A line that is not a structured log entry (a process's own output).
                    continue;
                }

                string? Text(string name) =>
                    root.ValueKind == JsonValueKind.Object && root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
                        ? value.GetString()
                        : null;
                if (Text("LogLevel") is not ("Warning" or "Error" or "Critical")
                    || !DateTimeOffset.TryParse(Text("Timestamp"), System.Globalization.CultureInfo.InvariantCulture, out var at) || at < since)
                {
                    continue;
                }

                kinds.Add((at, $"{resource} {Text("Category")}: {Text("Message")} {Text("Exception")?.Split('\n')[0]}"));
            }
        }

        return string.Join("\n", kinds.GroupBy(k => k.Kind).OrderBy(g => g.Min(k => k.At))
            .Select(g => $"{g.Count()} x from {g.Min(k => k.At):HH:mm:ss.fff}: {g.Key}"));
    }

    /// <summary>Waits until a line of <paramref name="resource"/>'s log contains <paramref name="text"/>.</summary>
    public static Task WaitForLogAsync(DistributedApplication app, string resource, string text, int seconds = 30) =>
        WaitUntilAsync($"\"{text}\" in {resource}'s log", async () =>
            (await LogLinesAsync(app, resource)).Any(line => line.Contains(text, StringComparison.Ordinal)), seconds);

    /// <summary>Publishes an event straight to a producer's exchange with a confirm, as that producer's relay would.</summary>
    public static async Task PublishAsync(DistributedApplication app, EventEnvelope envelope, string exchange = "orders.events")
    {
        var factory = new ConnectionFactory { Uri = new Uri(app.GetConnectionString("messaging")), ClientProvidedName = "tests" };
        await using var connection = await factory.CreateConnectionAsync(Cancellation);
        await using var channel = await connection.CreateChannelAsync(
            new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), Cancellation);
        var properties = new BasicProperties
        {
            MessageId = envelope.EventId.ToString(),
            Type = envelope.EventType,
            ContentType = "application/json",
            DeliveryMode = DeliveryModes.Persistent,
        };
        await channel.BasicPublishAsync(exchange, envelope.EventType, mandatory: true, properties,
            JsonSerializer.SerializeToUtf8Bytes(envelope, EventEnvelope.JsonOptions), Cancellation);
    }

    public static string[] Timeline(JsonElement order) =>
        order.GetProperty("timeline").EnumerateArray().Select(e => e.GetProperty("status").GetString()!).ToArray();
}
