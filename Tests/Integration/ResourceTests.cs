using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Shop.Hosting;
using Shop.Hosting.ApplicationModel;

namespace Shop.Tests.Integration;

[Collection(AppCollection.Name)]
public sealed partial class ResourceTests(AppFixture fixture)
{
    private DistributedApplication App => fixture.App;

    [Fact]
    public void Every_resource_of_the_app_model_is_running_and_healthy()
    {
        var snapshots = App.ResourceNotifications.GetSnapshots();

        Assert.Equal(
            ["admin-password", "gateway", "identitydb", "inventory", "inventorydb", "messaging", "notifications", "notificationsdb", "orders",
             "orders-client-secret", "ordersdb", "postgres", "redis"],
            snapshots.Select(s => s.Name).Order());
        Assert.All(snapshots, s => Assert.True(s.IsHealthy, $"{s.Name} is {s.State}/{s.Health}"));
        Assert.Equal(3, snapshots.Single(s => s.Name == "gateway").Replicas.Count);
        Assert.Equal(2, snapshots.Single(s => s.Name == "inventory").Replicas.Count);
    }

    [Fact]
    public async Task The_gateway_answers_on_its_external_endpoint_and_every_replica_is_ready()
    {
        using var gateway = App.CreateHttpClient("gateway");
        using var health = await gateway.GetAsync("/health", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);

        foreach (var replica in App.ResourceNotifications.GetSnapshot("gateway").Replicas)
        {
            using var direct = App.CreateHttpClient("gateway", replica.Index);
            using var ready = await direct.GetAsync("/health", TestContext.Current.CancellationToken);
            var body = await ready.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
            Assert.Contains("\"identitydb\"", body, StringComparison.Ordinal);
            Assert.Contains("\"redis\"", body, StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// Every connection of Orders' pool is busy (requests wait on a table lock), so requests queue for one: the replica
    /// is saturated, not cut off from its database, and its readiness says so. Before, the check ran on that pool, waited
    /// its turn past the probe's time and reported the database unhealthy: the Gateway took the only Orders replica out,
    /// and a burst of orders (a CI run's 200 at once) was answered "no replica is healthy" for seconds after it had passed.
    /// </summary>
    [Fact]
    public async Task A_replica_whose_connections_are_all_busy_stays_ready_while_its_database_answers()
    {
        var (_, tokens) = await ShopClients.CustomerAsync(App);
        using var orders = App.CreateHttpClient("orders");
        orders.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", tokens.AccessToken);
        using (var warm = await orders.GetAsync("/v1/orders", TestContext.Current.CancellationToken))
        {
            Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
        }

        await using var locker = new Npgsql.NpgsqlConnection(App.GetConnectionString("ordersdb"));
        await locker.OpenAsync(TestContext.Current.CancellationToken);
        var requests = new List<Task<HttpResponseMessage>>();
        var readiness = new List<(HttpStatusCode Status, TimeSpan Took, string Body)>();
        await using (var locked = await locker.BeginTransactionAsync(TestContext.Current.CancellationToken))
        {
            await using (var lockTable = new Npgsql.NpgsqlCommand("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE", locker, locked))
            {
                await lockTable.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
            }

            // Twice the pool (40): each holds a connection while its query waits on the lock, the rest wait for one.
            requests.AddRange(Enumerable.Range(0, 80).Select(_ => orders.GetAsync("/v1/orders", TestContext.Current.CancellationToken)));
            async Task<long> WaitingOnTheLockAsync() => await ShopData.ScalarAsync<long>(App, "ordersdb",
                "SELECT count(*) FROM pg_stat_activity WHERE datname = 'ordersdb' AND application_name = 'Orders' AND wait_event_type = 'Lock'");
            await ShopData.WaitUntilAsync("every connection of Orders' pool waiting on the lock", async () => await WaitingOnTheLockAsync() >= 40, seconds: 10);

            using var probe = new HttpClient { BaseAddress = orders.BaseAddress, Timeout = TimeSpan.FromSeconds(8) };
            for (var i = 0; i < 2; i++)
            {
                var started = System.Diagnostics.Stopwatch.StartNew();
                using var health = await probe.GetAsync("/health", TestContext.Current.CancellationToken);
                readiness.Add((health.StatusCode, started.Elapsed, await health.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)));
            }

            // Still saturated after the probes: they were asked while no connection of the pool was free.
            Assert.True(await WaitingOnTheLockAsync() >= 40, "Orders' pool drained before the probes were answered");

            await locked.RollbackAsync(TestContext.Current.CancellationToken);
        }

        // Answered once the lock went (503 had one waited past its turn for a connection, 5 s).
        var answers = await Task.WhenAll(requests);
        Assert.All(answers, a => Assert.Contains(a.StatusCode, new[] { HttpStatusCode.OK, HttpStatusCode.ServiceUnavailable }));
        foreach (var answer in answers)
        {
            answer.Dispose();
        }

        // Within the Gateway's probe time (2 s), and healthy: the probes' own connection is not one of the busy pool's.
        Assert.All(readiness, r =>
        {
            Assert.True(r.Status == HttpStatusCode.OK && r.Took < TimeSpan.FromSeconds(2), $"/health answered {(int)r.Status} after {r.Took}: {r.Body}");
            Assert.Contains("\"ordersdb\":{\"status\":\"Healthy\"", r.Body, StringComparison.Ordinal);
        });
    }

    [Fact]
    public void Services_receive_Aspire_variables_in_Aspire_formats()
    {
        var orders = ProcessEnvironment.Read(SinglePid("orders"));
        var gateway = ProcessEnvironment.Read(App.ResourceNotifications.GetSnapshot("gateway").Replicas[1].Pid!.Value);
        var inventoryReplicas = App.ResourceNotifications.GetSnapshot("inventory").Replicas;

        Assert.Matches(PostgresFormat(), orders["ConnectionStrings__ordersdb"]);
        Assert.EndsWith(";Database=ordersdb", orders["ConnectionStrings__ordersdb"], StringComparison.Ordinal);
        Assert.Matches(@"^amqp://shop:[^@]+@127\.0\.0\.1:\d+$", orders["ConnectionStrings__messaging"]);
        Assert.Matches(@"^127\.0\.0\.1:\d+,password=.+$", gateway["ConnectionStrings__redis"]);
        Assert.Equal(inventoryReplicas[0].Endpoint, orders["services__inventory__http__0"]);
        Assert.Equal(inventoryReplicas[1].Endpoint, orders["services__inventory__http__1"]);
        Assert.Equal("orders", orders["OTEL_SERVICE_NAME"]);
        Assert.Equal("service.instance.id=orders-0", orders["OTEL_RESOURCE_ATTRIBUTES"]);
        Assert.Equal("service.instance.id=gateway-1", gateway["OTEL_RESOURCE_ATTRIBUTES"]);
        Assert.Equal(App.DashboardUrl.ToString().TrimEnd('/'), orders["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        Assert.Equal("http/protobuf", orders["OTEL_EXPORTER_OTLP_PROTOCOL"]);
        Assert.Equal(App.ResourceNotifications.GetSnapshot("orders").Replicas[0].Endpoint, orders["ASPNETCORE_URLS"]);
        Assert.False(orders.ContainsKey("ConnectionStrings__identitydb"), "a service only gets what it references");
    }

    [Fact]
    public void Every_process_runs_with_idle_thread_pool_workers_that_do_not_spin()
    {
        const string SpinLimit = "System.Threading.ThreadPool.UnfairSemaphoreSpinLimit";

        // The AppHost runs in this process; each service reads its own runtimeconfig.json next to the assembly it starts from.
        Assert.Equal("0", AppContext.GetData(SpinLimit)?.ToString());
        var projects = App.Resources.OfType<ProjectResource>().ToList();
        Assert.Equal(4, projects.Count);
        foreach (var project in projects)
        {
            using var config = JsonDocument.Parse(File.ReadAllText(Path.ChangeExtension(project.Metadata.TargetPath, ".runtimeconfig.json")));
            Assert.Equal(0, config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties").GetProperty(SpinLimit).GetInt32());
        }
    }

    [Fact]
    public void Every_service_runs_the_workstation_garbage_collector()
    {
        // The server collector names its threads ".NET Server GC" (one per core); the workstation collector has none.
        var projects = App.Resources.OfType<ProjectResource>().ToList();
        Assert.Equal(4, projects.Count);
        foreach (var project in projects)
        {
            var pids = App.ResourceNotifications.GetSnapshot(project.Name).Replicas.Select(r => r.Pid).OfType<int>().ToList();
            Assert.NotEmpty(pids);
            foreach (var pid in pids)
            {
                var threads = ThreadNames(pid);
                Assert.Contains(".NET Finalizer", threads);
                Assert.DoesNotContain(".NET Server GC", threads);
            }
        }
    }

    [Fact]
    public void Backing_services_listen_on_loopback_only()
    {
        var listening = File.ReadAllLines("/proc/net/tcp").Skip(1)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f[3] == "0A")
            .Select(f => (Address: f[1].Split(':')[0], Port: Convert.ToInt32(f[1].Split(':')[1], 16)))
            .ToList();
        foreach (var name in new[] { "postgres", "redis", "messaging" })
        {
            var port = int.Parse(LoopbackPort().Match(App.GetConnectionString(name)).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            var sockets = listening.Where(l => l.Port == port).ToList();
            Assert.NotEmpty(sockets);
            Assert.All(sockets, s => Assert.Equal("0100007F", s.Address));
        }
    }

    private static List<string> ThreadNames(int pid)
    {
        var names = new List<string>();
        foreach (var task in Directory.GetDirectories($"/proc/{pid}/task"))
        {
            try
            {
                names.Add(File.ReadAllText(Path.Combine(task, "comm")).Trim());
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
            {
                // A thread-pool worker that retired between the listing and the read.
            }
        }

        return names;
    }

    private int SinglePid(string resource) =>
        App.ResourceNotifications.GetSnapshot(resource).Replicas.Single().Pid ?? throw new InvalidOperationException($"{resource} has no process");

    [GeneratedRegex(@"127\.0\.0\.1(?::|;Port=)(\d+)")]
    private static partial Regex LoopbackPort();

    [GeneratedRegex(@"^Host=127\.0\.0\.1;Port=\d+;Username=postgres;Password=[^;]+;Database=\w+$")]
    private static partial Regex PostgresFormat();
}

internal static class ProcessEnvironment
{
    public static Dictionary<string, string> Read(int pid) =>
        File.ReadAllText($"/proc/{pid}/environ")
            .Split('\0', StringSplitOptions.RemoveEmptyEntries)
            .Select(entry => entry.Split('=', 2))
            .Where(pair => pair.Length == 2)
            .GroupBy(pair => pair[0])
            .ToDictionary(g => g.Key, g => g.Last()[1]);

    /// <summary>True while the pid names a live (not zombie) process.</summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[stat.LastIndexOf(')') + 2] is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }
}
