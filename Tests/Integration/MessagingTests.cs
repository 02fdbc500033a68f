using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Shop.Hosting;
using Shop.Hosting.ApplicationModel;
using Shop.Hosting.Testing;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Messaging;

namespace Shop.Tests.Integration;

/// <summary>
/// Retries, dead-lettering and replay against the real application, with Notifications and Inventory retrying after
/// 0.3, 0.6 and 1 s instead of 1, 5 and 25 s. Events are published straight to <c>orders.events</c>, as a
/// producer would; the failure is a real one: a constraint in Notifications' database refuses the row.
/// </summary>
public sealed class MessagingTests(MessagingTests.Fixture fixture) : IClassFixture<MessagingTests.Fixture>
{
    private static readonly TimeSpan[] RetryDelays = [TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(600), TimeSpan.FromSeconds(1)];

    private DistributedApplication App => fixture.App;

    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_message_whose_handler_keeps_failing_is_retried_dead_lettered_with_its_reason_and_after_the_fix_replayed_to_take_effect_once()
    {
        using var admin = await NotificationsAdminAsync();
        var published = Stopwatch.StartNew();
        var (orderId, constraint, envelope, letter) = await RefusedOrderCreatedAsync(admin);
        Assert.True(published.Elapsed >= RetryDelays.Aggregate(TimeSpan.Zero, (a, b) => a + b), "It was dead-lettered before the retry delays had passed.");
        Assert.Equal(4, letter.GetProperty("attempts").GetInt32());
        Assert.Equal("order.created", letter.GetProperty("eventType").GetString());
        Assert.Equal("notifications.orders", letter.GetProperty("originalQueue").GetString());
        Assert.Contains(constraint, letter.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.True(letter.GetProperty("failedAt").GetDateTimeOffset() > DateTimeOffset.UtcNow.AddMinutes(-1));

        var detail = await admin.GetFromJsonAsync<JsonElement>($"/v1/admin/dead-letters/{envelope.EventId}", Cancellation);
        Assert.Equal("Microsoft.EntityFrameworkCore.DbUpdateException", detail.GetProperty("exceptionType").GetString());
        Assert.Equal(orderId, JsonDocument.Parse(detail.GetProperty("body").GetString()!).RootElement.GetProperty("data").GetProperty("orderId").GetGuid());
        Assert.Equal(0L, await NotificationCountAsync(orderId));

        await ExecuteAsync($"ALTER TABLE notifications DROP CONSTRAINT {constraint}");
        using var replay = await admin.PostAsync($"/v1/admin/dead-letters/{envelope.EventId}/replay", null, Cancellation);

        Assert.Equal(HttpStatusCode.OK, replay.StatusCode);
        Assert.Equal(1, (await replay.Content.ReadFromJsonAsync<JsonElement>(Cancellation)).GetProperty("replayed").GetInt32());
        await ShopData.WaitUntilAsync(async () => await NotificationCountAsync(orderId) == 1);
        using var again = await admin.PostAsync($"/v1/admin/dead-letters/{envelope.EventId}/replay", null, Cancellation);
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);

        // The same event once more, as a relay that crashed before marking it sent would publish it: the inbox holds.
        await ShopData.PublishAsync(App, envelope);
        await ShopData.WaitForLogAsync(App, "notifications", $"Event {envelope.EventId} was already processed");
        Assert.Equal(1L, await NotificationCountAsync(orderId));
        Assert.DoesNotContain(await ListAsync(admin), l => l.GetProperty("messageId").GetString() == envelope.EventId.ToString());
    }

    /// <summary>
    /// Another reader (a replica's list, the dashboard's Inspect) holds the messages it reads until it ends. A look at a
    /// message and its replay by id made meanwhile wait for it, briefly, instead of answering 404. Before, they did not
    /// (CI once met it: a replay right after a look at the message answered 404).
    /// </summary>
    [Fact]
    public async Task A_dead_letter_another_reader_holds_for_a_moment_is_still_shown_and_replayed_by_id()
    {
        using var admin = await NotificationsAdminAsync();
        var (orderId, constraint, envelope, letter) = await RefusedOrderCreatedAsync(admin);
        await ExecuteAsync($"ALTER TABLE notifications DROP CONSTRAINT {constraint}");

        async Task<HttpStatusCode> WhileHeldAsync(Func<Task<HttpStatusCode>> ask)
        {
            // A reader that takes every message up to this one, unacknowledged, and gives them back 600 ms later.
            var factory = new RabbitMQ.Client.ConnectionFactory { Uri = new Uri(App.GetConnectionString("messaging")), ClientProvidedName = "tests" };
            await using var connection = await factory.CreateConnectionAsync(Cancellation);
            var channel = await connection.CreateChannelAsync(cancellationToken: Cancellation);
            while (await channel.BasicGetAsync(letter.GetProperty("queue").GetString()!, autoAck: false, Cancellation) is { } held
                && held.BasicProperties.MessageId != envelope.EventId.ToString())
            {
            }

            var asked = ask();
            await Task.Delay(TimeSpan.FromMilliseconds(600), Cancellation);
            Assert.False(asked.IsCompleted, "the request was answered while the message was held");
            // Closed, the channel gives back what it holds.
            await channel.DisposeAsync();
            return await asked;
        }

        Assert.Equal(HttpStatusCode.OK, await WhileHeldAsync(async () =>
        {
            using var shown = await admin.GetAsync($"/v1/admin/dead-letters/{envelope.EventId}", Cancellation);
            return shown.StatusCode;
        }));
        Assert.Equal(HttpStatusCode.OK, await WhileHeldAsync(async () =>
        {
            using var replayed = await admin.PostAsync($"/v1/admin/dead-letters/{envelope.EventId}/replay", null, Cancellation);
            return replayed.StatusCode;
        }));
        await ShopData.WaitUntilAsync(async () => await NotificationCountAsync(orderId) == 1);
    }

    [Fact]
    public async Task Events_that_arrive_while_postgresql_is_down_wait_for_it_however_long_it_takes_and_take_effect_once_it_is_back()
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        timeout.CancelAfter(TimeSpan.FromSeconds(180));
        var product = await ShopData.CreateProductAsync(App, stock: 5);
        var cancelledOrder = Guid.NewGuid();
        using (var inventory = App.CreateHttpClient("inventory"))
        {
            inventory.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await ShopClients.ServiceTokenAsync(App));
            using var reserved = await inventory.PostAsJsonAsync("/v1/reservations",
                new { orderId = cancelledOrder, items = new[] { new { productId = product, quantity = 2 } } }, timeout.Token);
            Assert.Equal(HttpStatusCode.Created, reserved.StatusCode);
        }

        Assert.Equal((5, 2), await ShopData.StockAsync(App, product));
        var createdOrder = Guid.NewGuid();
        var created = OrderCreated(createdOrder);
        var cancelled = new EventEnvelope(Guid.CreateVersion7(), "order.cancelled", 1, DateTimeOffset.UtcNow, "demo", cancelledOrder.ToString(), 2,
            "messaging-test", null, null,
            JsonSerializer.SerializeToElement(new { orderId = cancelledOrder, reason = "customer", reservationId = (Guid?)null, refunded = false }, EventEnvelope.JsonOptions));

        await App.Orchestrator.StopResourceAsync("postgres");
        try
        {
            await ShopData.PublishAsync(App, created);
            await ShopData.PublishAsync(App, cancelled);
            // Both consumers retry after 0.3, 0.6 and 1 s here: an event whose handler failed like this 4 times in a row
            // would be dead-lettered within 2 s. The outage lasts five times that.
            await Task.Delay(TimeSpan.FromSeconds(10), timeout.Token);
        }
        finally
        {
            await App.Orchestrator.StartResourceAsync("postgres");
            NpgsqlConnection.ClearAllPools();
        }

        foreach (var resource in App.Resources)
        {
            await App.ResourceNotifications.WaitForResourceHealthyAsync(resource.Name, timeout.Token);
        }

        await ShopData.WaitForStockAsync(App, product, (5, 0), TimeSpan.FromSeconds(60));
        await ShopData.WaitUntilAsync("Notifications to handle order.created", async () => await NotificationCountAsync(createdOrder) == 1, seconds: 60);
        Assert.Equal("Released", await ShopData.ScalarAsync<string>(App, "inventorydb", $"SELECT status FROM reservations WHERE order_id = '{cancelledOrder}'"));

        // Neither was dead-lettered on the way, and each took effect once.
        using var dashboard = new HttpClient { BaseAddress = App.DashboardUrl };
        foreach (var (queue, eventId) in new[] { ("inventory.orders.dlq", cancelled.EventId), ("notifications.orders.dlq", created.EventId) })
        {
            var letters = await dashboard.GetFromJsonAsync<JsonElement>($"/api/messaging/dead-letters/messages?queue={queue}", timeout.Token);
            Assert.DoesNotContain(letters.GetProperty("messages").EnumerateArray(), m => m.GetProperty("messageId").GetString() == eventId.ToString());
        }

        Assert.Equal(1L, await ShopData.ScalarAsync<long>(App, "inventorydb", $"SELECT count(*) FROM inbox_messages WHERE event_id = '{cancelled.EventId}'"));
        Assert.Equal(1L, await ShopData.ScalarAsync<long>(App, "notificationsdb", $"SELECT count(*) FROM inbox_messages WHERE event_id = '{created.EventId}'"));
        await Task.Delay(TimeSpan.FromSeconds(1), timeout.Token);
        Assert.Equal(1L, await NotificationCountAsync(createdOrder));
        Assert.Equal((5, 0), await ShopData.StockAsync(App, product));
    }

    [Fact]
    public async Task An_event_that_breaks_its_schema_is_dead_lettered_at_once_without_retries_and_the_dashboard_lists_and_replays_its_queue()
    {
        using var admin = await NotificationsAdminAsync();
        var orderId = Guid.NewGuid();
        var valid = OrderCreated(orderId);
        var data = JsonSerializer.SerializeToNode(valid.Data)!.AsObject();
        data.Remove("customerId");
        var invalid = valid with { Data = JsonSerializer.SerializeToElement(data) };

        await ShopData.PublishAsync(App, invalid);

        var letter = await WaitForDeadLetterAsync(admin, invalid.EventId);
        Assert.Equal(1, letter.GetProperty("attempts").GetInt32());
        Assert.Contains("$.data: required property 'customerId' is missing", letter.GetProperty("reason").GetString(), StringComparison.Ordinal);
        var detail = await admin.GetFromJsonAsync<JsonElement>($"/v1/admin/dead-letters/{invalid.EventId}", Cancellation);
        Assert.Equal("Shop.ServiceDefaults.Messaging.Schemas.EventValidationException", detail.GetProperty("exceptionType").GetString());
        Assert.Equal(0L, await NotificationCountAsync(orderId));

        using var dashboard = new HttpClient { BaseAddress = App.DashboardUrl };
        dashboard.DefaultRequestHeaders.Add("X-Dashboard-Action", "1");
        var queues = await dashboard.GetFromJsonAsync<JsonElement>("/api/messaging/dead-letters", Cancellation);
        var queue = queues.EnumerateArray().Single(q => q.GetProperty("queue").GetString() == "notifications.orders.dlq");
        Assert.Equal("notifications.orders", queue.GetProperty("originalQueue").GetString());
        Assert.True(queue.GetProperty("messages").GetInt32() >= 1);
        // Inspecting reads the messages without taking them.
        var peeked = await dashboard.GetFromJsonAsync<JsonElement>("/api/messaging/dead-letters/messages?queue=notifications.orders.dlq", Cancellation);
        var message = peeked.GetProperty("messages").EnumerateArray().Single(m => m.GetProperty("messageId").GetString() == invalid.EventId.ToString());
        Assert.Contains("customerId", message.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Contains(orderId.ToString(), message.GetProperty("body").GetString(), StringComparison.Ordinal);
        Assert.Equal(queue.GetProperty("messages").GetInt32(), (await dashboard.GetFromJsonAsync<JsonElement>("/api/messaging/dead-letters", Cancellation))
            .EnumerateArray().Single(q => q.GetProperty("queue").GetString() == "notifications.orders.dlq").GetProperty("messages").GetInt32());

        using var replayed = await dashboard.PostAsync("/api/messaging/dead-letters/replay?queue=notifications.orders.dlq", null, Cancellation);

        Assert.Equal(HttpStatusCode.OK, replayed.StatusCode);
        Assert.True((await replayed.Content.ReadFromJsonAsync<JsonElement>(Cancellation)).GetProperty("replayed").GetInt32() >= 1);
        // Still invalid: back in the dead-letter queue, again after one attempt (the counter was reset).
        var back = await WaitForDeadLetterAsync(admin, invalid.EventId);
        Assert.Equal(1, back.GetProperty("attempts").GetInt32());
        using var unknown = await dashboard.PostAsync("/api/messaging/dead-letters/replay?queue=orders.events", null, Cancellation);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task The_dead_letter_admin_api_is_for_admins_only()
    {
        using var notifications = App.CreateHttpClient("notifications");
        using var anonymous = await notifications.GetAsync("/v1/admin/dead-letters", Cancellation);
        var customer = (await ShopClients.CustomerAsync(App)).Tokens;
        notifications.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", customer.AccessToken);
        using var forbidden = await notifications.GetAsync("/v1/admin/dead-letters", Cancellation);

        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
    }

    [Fact]
    public async Task The_gateway_reaches_each_services_dead_letter_admin_api_under_its_own_prefix()
    {
        var admin = await ShopClients.AdminAsync(App);
        using var _a = admin;
        var (customer, _) = await ShopClients.CustomerAsync(App);
        using var _c = customer;

        foreach (var service in new[] { "notifications", "inventory" })
        {
            var list = await admin.GetFromJsonAsync<JsonElement>($"/v1/admin/dead-letters/{service}", Cancellation);
            Assert.Equal(JsonValueKind.Array, list.GetProperty("items").ValueKind);
            using var unknown = await admin.GetAsync($"/v1/admin/dead-letters/{service}/{Guid.NewGuid()}", Cancellation);
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
            using var forbidden = await customer.GetAsync($"/v1/admin/dead-letters/{service}", Cancellation);
            Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        }
    }

    [Fact]
    public async Task Sent_outbox_rows_are_deleted_after_their_retention_and_unsent_ones_never_are()
    {
        // This application keeps Orders' sent rows for 2 s. An old row that was never sent must stay.
        var stuck = Guid.NewGuid();
        await ExecuteAsync("ordersdb", $"""
            INSERT INTO outbox_messages (event_id, exchange, routing_key, payload, created_at, next_attempt_at)
            VALUES ('{stuck}', 'orders.events', 'order.created', jsonb_build_object(), now() - interval '10 days', now() + interval '1 day')
            """);
        var product = await ShopData.CreateProductAsync(App, stock: 5);
        var (customer, _) = await ShopClients.CustomerAsync(App);
        using var _c = customer;

        var orderId = await ShopData.PlaceOrderAsync(customer, product, 1);

        await ShopData.WaitForOrderAsync(customer, orderId, TimeSpan.FromSeconds(60), "Paid");
        await ShopData.WaitUntilAsync(async () => await NotificationCountAsync(orderId) >= 1);
        await ShopData.WaitUntilAsync(async () => await ShopData.ScalarAsync<long>(App, "ordersdb",
            $"SELECT count(*) FROM outbox_messages WHERE payload->>'aggregateId' = '{orderId}'") == 0);
        Assert.Equal(1L, await ShopData.ScalarAsync<long>(App, "ordersdb", $"SELECT count(*) FROM outbox_messages WHERE event_id = '{stuck}'"));
        await ExecuteAsync("ordersdb", $"DELETE FROM outbox_messages WHERE event_id = '{stuck}'");
    }

    [Fact]
    public async Task A_consumer_whose_queue_is_deleted_under_it_declares_it_again_and_consumes_what_comes_next()
    {
        var factory = new RabbitMQ.Client.ConnectionFactory { Uri = new Uri(App.GetConnectionString("messaging")!), ClientProvidedName = "tests" };
        await using var connection = await factory.CreateConnectionAsync(Cancellation);
        await using (var channel = await connection.CreateChannelAsync(cancellationToken: Cancellation))
        {
            // The broker cancels the consumer. Before, it stayed cancelled: nothing was consumed until a restart.
            await channel.QueueDeleteAsync("notifications.orders", ifUnused: false, ifEmpty: false, cancellationToken: Cancellation);
        }

        await ShopData.WaitUntilAsync("the queue declared again with a consumer on it", async () =>
        {
            // A passive declare of a missing queue closes its channel: one channel per look.
            await using var probe = await connection.CreateChannelAsync(cancellationToken: Cancellation);
            try
            {
                return (await probe.QueueDeclarePassiveAsync("notifications.orders", Cancellation)).ConsumerCount > 0;
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
            {
                return false;
            }
        }, seconds: 60);

        var orderId = Guid.NewGuid();
        await ShopData.PublishAsync(App, OrderCreated(orderId));
        await ShopData.WaitUntilAsync("the next event handled", async () => await NotificationCountAsync(orderId) == 1, seconds: 30);
    }

    [Fact]
    public async Task An_event_published_before_its_consumer_ever_ran_waits_in_the_consumers_queue()
    {
        // A producer and a subscription of their own: no consumer of it has ever run, so nothing but the relay declares its queue.
        var name = $"relaytest_{Guid.NewGuid():N}";
        var subscription = new ConsumerOptions("relay-test", $"{name}.queue", $"{name}.events", ["order.*"]);
        var envelope = OrderCreated(Guid.NewGuid());
        var factory = new RabbitMQ.Client.ConnectionFactory { Uri = new Uri(App.GetConnectionString("messaging")!), ClientProvidedName = "tests" };
        await using var broker = await factory.CreateConnectionAsync(Cancellation);
        try
        {
            await ScratchDatabase.RunAsync(App, "relay", async (server, database) =>
            {
                var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
                builder.Configuration["ConnectionStrings:relaydb"] = new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = database }.ConnectionString;
                builder.Configuration["ConnectionStrings:messaging"] = App.GetConnectionString("messaging");
                builder.Services.AddSingleton(TimeProvider.System);
                builder.AddNpgsqlDbContext<RelayTestDbContext>("relaydb");
                builder.AddDatabaseMigrations<RelayTestDbContext>();
                builder.AddRabbitMQClient("messaging");
                builder.AddOutboxRelay<RelayTestDbContext>(new SubscriptionCatalog([subscription]));
                using var host = builder.Build();
                await host.StartAsync(Cancellation);
                try
                {
                    await host.Services.WaitForMigrationsAsync<RelayTestDbContext>(Cancellation);
                    await using (var connection = new NpgsqlConnection(builder.Configuration["ConnectionStrings:relaydb"]))
                    {
                        await connection.OpenAsync(Cancellation);
                        await OutboxSql.InsertAsync(connection, null, subscription.Exchange, envelope, Cancellation);
                    }

                    var row = "";
                    try
                    {
                        await ShopData.WaitUntilAsync("the event published", async () =>
                        {
                            await using var connection = new NpgsqlConnection(builder.Configuration["ConnectionStrings:relaydb"]);
                            await connection.OpenAsync(Cancellation);
                            await using var sent = new NpgsqlCommand("SELECT sent_at IS NOT NULL, attempts, last_error FROM outbox_messages", connection);
                            await using var reader = await sent.ExecuteReaderAsync(Cancellation);
                            await reader.ReadAsync(Cancellation);
                            row = $"attempts {reader.GetInt32(1)}, last error: {(reader.IsDBNull(2) ? "none" : reader.GetString(2))}";
                            return reader.GetBoolean(0);
                        }, seconds: 30);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        throw new InvalidOperationException($"{ex.Message} The outbox row: {row}.", ex);
                    }
                }
                finally
                {
                    await host.StopAsync(CancellationToken.None);
                }
            });

            // Before, the exchange had no queue bound to it and dropped the event: this queue did not exist.
            await using var channel = await broker.CreateChannelAsync(cancellationToken: Cancellation);
            var waiting = await channel.BasicGetAsync(subscription.Queue, autoAck: true, Cancellation);
            Assert.NotNull(waiting);
            Assert.Equal(envelope.EventId.ToString(), waiting.BasicProperties.MessageId);
            Assert.Equal("order.created", waiting.RoutingKey);
        }
        finally
        {
            await using var cleanup = await broker.CreateChannelAsync(cancellationToken: CancellationToken.None);
            foreach (var queue in new[] { subscription.Queue, subscription.DeadLetterQueue })
            {
                await cleanup.QueueDeleteAsync(queue, ifUnused: false, ifEmpty: false, cancellationToken: CancellationToken.None);
            }

            await cleanup.ExchangeDeleteAsync(subscription.Exchange, ifUnused: false, cancellationToken: CancellationToken.None);
        }
    }

    /// <summary>
    /// Sent rows past their retention are deleted until none is left, not one batch of 5,000 per cleanup interval (ten
    /// minutes by default: a few rows a second, where a busy service sends hundreds, so the table grew for good). Here the
    /// interval is an hour: before, 7,000 of the 12,000 old rows were still there after the first cleanup.
    /// </summary>
    [Fact]
    public async Task The_relay_deletes_every_sent_row_past_its_retention_however_many_there_are()
    {
        await ScratchDatabase.RunAsync(App, "cleanup", async (server, database) =>
        {
            var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
            var connectionString = new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = database }.ConnectionString;
            builder.Configuration["ConnectionStrings:relaydb"] = connectionString;
            builder.Configuration["ConnectionStrings:messaging"] = App.GetConnectionString("messaging");
            builder.Configuration["Messaging:Outbox:Retention"] = "01:00:00";
            builder.Configuration["Messaging:Outbox:CleanupInterval"] = "01:00:00";
            builder.Services.AddSingleton(TimeProvider.System);
            builder.AddNpgsqlDbContext<RelayTestDbContext>("relaydb");
            builder.AddDatabaseMigrations<RelayTestDbContext>();
            builder.AddRabbitMQClient("messaging");
            builder.AddOutboxRelay<RelayTestDbContext>();

            // The rows are there before the relay starts, so its first cleanup meets all of them; one sent a minute ago stays.
            var migrations = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
            migrations.Configuration["ConnectionStrings:relaydb"] = connectionString;
            migrations.AddNpgsqlDbContext<RelayTestDbContext>("relaydb");
            migrations.AddDatabaseMigrations<RelayTestDbContext>();
            using (var migrator = migrations.Build())
            {
                await migrator.StartAsync(Cancellation);
                await migrator.Services.WaitForMigrationsAsync<RelayTestDbContext>(Cancellation);
                await migrator.StopAsync(CancellationToken.None);
            }

            await ScratchDatabase.ExecuteAsync(connectionString, """
                INSERT INTO outbox_messages (event_id, exchange, routing_key, payload, created_at, sent_at)
                SELECT gen_random_uuid(), 'old', 'old.sent', '{}', now() - interval '2 days', now() - interval '2 days' + n * interval '1 ms'
                FROM generate_series(1, 12000) AS n;
                INSERT INTO outbox_messages (event_id, exchange, routing_key, payload, created_at, sent_at)
                VALUES (gen_random_uuid(), 'recent', 'recent.sent', '{}', now() - interval '1 minute', now() - interval '1 minute');
                """);
            using var host = builder.Build();
            await host.StartAsync(Cancellation);
            try
            {
                long left = -1;
                await ShopData.WaitUntilAsync("the old sent rows deleted", async () =>
                {
                    await using var connection = new NpgsqlConnection(connectionString);
                    await connection.OpenAsync(Cancellation);
                    await using var count = new NpgsqlCommand("SELECT count(*) FROM outbox_messages WHERE exchange = 'old'", connection);
                    left = (long)(await count.ExecuteScalarAsync(Cancellation))!;
                    return left == 0;
                }, seconds: 30);

                await using var check = new NpgsqlConnection(connectionString);
                await check.OpenAsync(Cancellation);
                await using var recent = new NpgsqlCommand("SELECT count(*) FROM outbox_messages WHERE exchange = 'recent'", check);
                Assert.Equal(1L, (long)(await recent.ExecuteScalarAsync(Cancellation))!);
            }
            finally
            {
                await host.StopAsync(CancellationToken.None);
            }
        });
    }

    private sealed class RelayTestDbContext(DbContextOptions<RelayTestDbContext> options) : DbContext(options)
    {
        protected override void OnModelCreating(ModelBuilder modelBuilder) => modelBuilder.AddMessagingTables().UseSnakeCaseNames();
    }

    private static EventEnvelope OrderCreated(Guid orderId) => new(
        Guid.CreateVersion7(), "order.created", 1, DateTimeOffset.UtcNow, "demo", orderId.ToString(), 1, "messaging-test", null, null,
        JsonSerializer.SerializeToElement(new
        {
            orderId,
            customerId = "customer-1",
            total = 19.98m,
            currency = "EUR",
            items = new[] { new { productId = Guid.NewGuid(), quantity = 2, unitPrice = 9.99m } },
        }, EventEnvelope.JsonOptions));
    private async Task<HttpClient> NotificationsAdminAsync()
    {
        var tokens = await ShopClients.LoginAsync(App, "admin@demo.local", AppFixture.AdminPassword);
        var client = App.CreateHttpClient("notifications");
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", tokens.AccessToken);
        return client;
    }

    private static async Task<List<JsonElement>> ListAsync(HttpClient admin) =>
        (await admin.GetFromJsonAsync<JsonElement>("/v1/admin/dead-letters", Cancellation)).GetProperty("items").EnumerateArray().ToList();

    /// <summary>An order.created that Notifications' database refuses (a constraint the caller drops to fix it), published and dead-lettered.</summary>
    private async Task<(Guid OrderId, string Constraint, EventEnvelope Envelope, JsonElement Letter)> RefusedOrderCreatedAsync(HttpClient admin)
    {
        var orderId = Guid.NewGuid();
        var constraint = $"refuse_{orderId:N}";
        await ExecuteAsync($"ALTER TABLE notifications ADD CONSTRAINT {constraint} CHECK (subject_id <> '{orderId}')");
        var envelope = OrderCreated(orderId);
        await ShopData.PublishAsync(App, envelope);
        return (orderId, constraint, envelope, await WaitForDeadLetterAsync(admin, envelope.EventId));
    }

    private static async Task<JsonElement> WaitForDeadLetterAsync(HttpClient admin, Guid eventId)
    {
        JsonElement? found = null;
        await ShopData.WaitUntilAsync(async () =>
        {
            found = (await ListAsync(admin)).FirstOrDefault(l => l.GetProperty("messageId").GetString() == eventId.ToString());
            return found?.ValueKind == JsonValueKind.Object;
        });
        return found!.Value;
    }

    private async Task<long> NotificationCountAsync(Guid orderId)
    {
        await using var connection = new NpgsqlConnection(App.GetConnectionString("notificationsdb"));
        await connection.OpenAsync(Cancellation);
        await using var command = new NpgsqlCommand("SELECT count(*) FROM notifications WHERE subject_id = $1", connection);
        command.Parameters.Add(new() { Value = orderId.ToString() });
        return (long)(await command.ExecuteScalarAsync(Cancellation))!;
    }

    private Task ExecuteAsync(string sql) => ExecuteAsync("notificationsdb", sql);

    private async Task ExecuteAsync(string database, string sql)
    {
        await using var connection = new NpgsqlConnection(App.GetConnectionString(database));
        await connection.OpenAsync(Cancellation);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(Cancellation);
    }
    /// <summary>An application of its own: Notifications gets short retry delays through its environment, as an AppHost would set them.</summary>
    public sealed class Fixture : IAsyncLifetime
    {
        private DistributedApplication? _app;

        public DistributedApplication App => _app ?? throw new InvalidOperationException("The application has not started.");

        public async ValueTask InitializeAsync()
        {
            var builder = await DistributedApplicationTestingBuilder.CreateAsync<Program>([$"--AppHost:AdminPassword={AppFixture.AdminPassword}"]);
            var delays = string.Join(",", RetryDelays.Select(d => d.ToString("c", CultureInfo.InvariantCulture)));
            foreach (var consumer in new[] { "notifications", "inventory" })
            {
                builder.Resources.OfType<ProjectResource>().Single(r => r.Name == consumer)
                    .Annotations.Add(new EnvironmentAnnotation("Messaging__RetryDelays", () => delays));
            }

            var orders = builder.Resources.OfType<ProjectResource>().Single(r => r.Name == "orders");
            orders.Annotations.Add(new EnvironmentAnnotation("Messaging__Outbox__Retention", () => "00:00:02"));
            orders.Annotations.Add(new EnvironmentAnnotation("Messaging__Outbox__CleanupInterval", () => "00:00:01"));
            var app = await builder.BuildAsync();
            try
            {
                using var timeout = new CancellationTokenSource(AppFixture.StartTimeout);
                await app.StartAsync(timeout.Token);
                foreach (var resource in app.Resources)
                {
                    await app.ResourceNotifications.WaitForResourceHealthyAsync(resource.Name, timeout.Token);
                }
            }
            catch
            {
                await app.DisposeAsync();
                throw;
            }

            _app = app;
        }

        public async ValueTask DisposeAsync()
        {
            if (_app is not null)
            {
                await _app.DisposeAsync();
            }
        }
    }
}
