using System.Diagnostics;
using System.Text.Json;
using Shop.Hosting;
using Shop.Hosting.Orchestration;

namespace Shop.Tests.Integration;

[Collection(AppCollection.Name)]
public sealed class LifecycleTests(AppFixture fixture)
{
    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_crashed_service_replica_is_restarted_and_becomes_healthy_again()
    {
        var app = fixture.App;
        var before = app.ResourceNotifications.GetSnapshot("notifications").Replicas.Single();

        using (var process = Process.GetProcessById(before.Pid!.Value))
        {
            process.Kill();
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        var after = await app.ResourceNotifications.WaitForResourceAsync("notifications",
            s => s.IsHealthy && s.Replicas.Single().Restarts == before.Restarts + 1, timeout.Token);

        Assert.NotEqual(before.Pid, after.Replicas.Single().Pid);
        Assert.Contains(app.Orchestrator.Notifications.Find("notifications").Logs.Tail(200),
            line => line.Text.StartsWith("Process exited with code", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_second_app_starts_quietly_runs_beside_the_first_and_stopping_it_leaves_no_process_or_data_behind()
    {
        var second = await AppFixture.StartAsync();
        List<int> pids;
        string runDirectory;
        try
        {
            Assert.NotEqual(fixture.App.GetEndpoint("gateway"), second.GetEndpoint("gateway"));
            Assert.NotEqual(fixture.App.GetConnectionString("postgres"), second.GetConnectionString("postgres"));
            Assert.NotEqual(fixture.App.RunDirectory, second.RunDirectory);
            using var gateway = second.CreateHttpClient("gateway");
            using var jwks = await gateway.GetAsync("/.well-known/jwks.json", Cancellation);
            Assert.True(jwks.IsSuccessStatusCode);
            await AssertStartedInOrderAndQuietlyAsync(second);

            runDirectory = second.RunDirectory;
            // Private to the AppHost's user: PostgreSQL's socket and RabbitMQ's password are in there. (Under root the
            // postgres group may pass through to its server's folder, not list or write.)
            Assert.Equal(UnixFileMode.None, File.GetUnixFileMode(runDirectory) & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite
                | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute));
            pids = ReadPids(runDirectory);
            Assert.True(pids.Count >= 10, $"expected every process of the run to be registered, saw {pids.Count}");
        }
        finally
        {
            await second.DisposeAsync();
        }

        Assert.All(pids, pid => Assert.False(ProcessEnvironment.IsAlive(pid), $"process {pid} outlived the app"));
        Assert.False(Directory.Exists(runDirectory));
        Assert.All(fixture.App.ResourceNotifications.GetSnapshots(), s => Assert.True(s.IsHealthy, $"{s.Name} was disturbed"));
    }

    /// <summary>
    /// On a first start against an empty database, each replica's background work (consumers, outbox relays, the
    /// reservation sweeper, the saga worker, the signing-key refresher) waits for its migrations, so none of it
    /// fails on a table that does not exist yet; and the readiness probes, which find every replica unready for a
    /// few seconds, log each check's change once rather than an error per probe. So no replica logs an error, none of
    /// those components warns, and nothing reports a missing table.
    /// </summary>
    private static async Task AssertStartedInOrderAndQuietlyAsync(DistributedApplication app)
    {
        string[] waiting = ["ReservationSweeper", "EventConsumer", "OutboxRelay", "SagaWorker", "SigningKeyRefresher", "DefaultHealthCheckService"];
        static bool HealthyLogged((string Level, string Category, string Message) e) =>
            e.Message is "Health check migrations is Healthy (was Unhealthy): ok" or "Health check migrations is Healthy: ok";
        foreach (var project in app.Resources.OfType<Shop.Hosting.ApplicationModel.ProjectResource>())
        {
            for (var replica = 0; replica < project.Replicas; replica++)
            {
                List<(string Level, string Category, string Message)> Entries() => app.Orchestrator.Notifications.Find(project.Name).Logs.Tail(5000, replica)
                    .Select(line => line.Text.StartsWith('{') ? JsonDocument.Parse(line.Text).RootElement : (JsonElement?)null)
                    .OfType<JsonElement>()
                    .Select(e => (Level: e.GetProperty("LogLevel").GetString()!, Category: e.GetProperty("Category").GetString()!,
                        Message: e.GetProperty("Message").GetString()! + (e.TryGetProperty("Exception", out var ex) ? $" {ex.GetString()}" : "")))
                    .ToList();
                // The replica logs the check's change as it answers the probe that found it healthy, but the console
                // logger writes from a queue: on a busy machine the line may reach the AppHost a moment after that answer.
                var deadline = DateTime.UtcNow.AddSeconds(15);
                while (!Entries().Any(HealthyLogged) && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(200, Cancellation);
                }

                var entries = Entries();
                var where = $"{project.Name} replica {replica}";
                var ready = entries.FindIndex(e => e.Message.StartsWith("Database ready", StringComparison.Ordinal));
                Assert.True(ready >= 0, $"{where} logged no 'Database ready'");
                var noisy = entries.Where(e => e.Level is "Error" or "Critical"
                    || e.Level == "Warning" && (waiting.Contains(e.Category.Split('.')[^1]) || e.Message.Contains("does not exist", StringComparison.Ordinal)))
                    .Select(e => $"{e.Level} {e.Category}: {e.Message}").ToList();
                Assert.True(noisy.Count == 0, $"{where} logged:\n{string.Join("\n", noisy)}");
                var consuming = entries.FindIndex(e => e.Message.StartsWith("Consuming ", StringComparison.Ordinal));
                Assert.True(consuming < 0 || consuming > ready, $"{where} started consuming before its migrations had run");
                Assert.Contains(entries, HealthyLogged);
            }
        }
    }

    [Theory]
    [InlineData(NativeMethods.SIGTERM)]
    [InlineData(NativeMethods.SIGKILL)]
    public async Task After_the_AppHost_process_gets_SIGTERM_or_SIGKILL_nothing_it_started_is_running_15_seconds_later(int signal)
    {
        var appHost = typeof(Program).Assembly.Location;
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { appHost, "--environment=Development", "--AppHost:GatewayPort=0", "--AppHost:DashboardPort=0" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        using var host = Process.Start(start)!;
        var pids = new List<int>();
        string? runDirectory = null;
        try
        {
            string? dashboard = null;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
            timeout.CancelAfter(AppFixture.StartTimeout);
            while (dashboard is null && await host.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                runDirectory ??= line.StartsWith("Run data: ", StringComparison.Ordinal) ? line["Run data: ".Length..] : null;
                dashboard = line.StartsWith("Dashboard: ", StringComparison.Ordinal) ? line["Dashboard: ".Length..] : null;
            }

            Assert.NotNull(dashboard);
            Assert.NotNull(runDirectory);
            using var client = new HttpClient();
            var resources = await client.GetFromJsonAsync<JsonElement>($"{dashboard}/api/resources", Cancellation);
            Assert.All(resources.EnumerateArray(), r => Assert.Equal("Healthy", r.GetProperty("health").GetString()));
            pids = ReadPids(runDirectory);
            Assert.True(pids.Count >= 10);

            Assert.True(NativeMethods.Signal(host.Id, signal));
            await host.WaitForExitAsync(Cancellation);
            if (signal == NativeMethods.SIGTERM)
            {
                Assert.Equal(0, host.ExitCode);
            }

            var deadline = Stopwatch.StartNew();
            while (deadline.Elapsed < TimeSpan.FromSeconds(15) && pids.Any(ProcessEnvironment.IsAlive))
            {
                await Task.Delay(250, Cancellation);
            }

            Assert.All(pids, pid => Assert.False(ProcessEnvironment.IsAlive(pid), $"process {pid} survived the AppHost"));

            // The watchdog removes the data once everything has stopped: up to 1 s to notice the AppHost has gone, 5 s for
            // what it started to stop (then SIGKILL), and up to 5 s of retries for a file written while the folder is being
            // removed. On this two-core machine, with other tests running, that once took more than 15 s all told.
            while (deadline.Elapsed < TimeSpan.FromSeconds(30) && Directory.Exists(runDirectory))
            {
                await Task.Delay(250, Cancellation);
            }

            Assert.False(Directory.Exists(runDirectory), "the run's data was not removed; left: "
                + string.Join(", ", Directory.Exists(runDirectory) ? Directory.EnumerateFileSystemEntries(runDirectory, "*", SearchOption.AllDirectories).Take(20) : []));
        }
        finally
        {
            // If the assertion failed, do not leave the machine dirty for the next test.
            if (!host.HasExited)
            {
                host.Kill();
            }

            foreach (var pid in pids.Where(ProcessEnvironment.IsAlive))
            {
                NativeMethods.SignalGroup(pid, NativeMethods.SIGKILL);
            }
        }
    }

    [Fact]
    public async Task The_dashboard_lists_resources_streams_their_logs_and_stops_and_starts_them()
    {
        var app = fixture.App;
        using var dashboard = new HttpClient { BaseAddress = app.DashboardUrl };

        var page = await dashboard.GetStringAsync("/", Cancellation);
        Assert.Contains("Shop AppHost", page, StringComparison.Ordinal);
        var resources = await dashboard.GetFromJsonAsync<JsonElement>("/api/resources", Cancellation);
        var inventory = resources.EnumerateArray().Single(r => r.GetProperty("name").GetString() == "inventory");
        Assert.Equal("Project", inventory.GetProperty("type").GetString());
        Assert.Equal(2, inventory.GetProperty("replicas").GetArrayLength());
        Assert.All(inventory.GetProperty("replicas").EnumerateArray(), r => Assert.True(r.GetProperty("pid").GetInt32() > 0));
        var logs = await dashboard.GetFromJsonAsync<JsonElement>("/api/resources/inventory/logs?replica=1&tail=50", Cancellation);
        Assert.NotEqual(0, logs.GetArrayLength());
        Assert.All(logs.EnumerateArray(), l => Assert.Equal(1, l.GetProperty("replica").GetInt32()));
        // Another site's page can post to loopback, but cannot send the action header without a preflight nothing answers.
        using (var crossSite = await dashboard.PostAsync("/api/resources/notifications/stop", null, Cancellation))
        {
            Assert.Equal(System.Net.HttpStatusCode.Forbidden, crossSite.StatusCode);
        }

        dashboard.DefaultRequestHeaders.Add("X-Dashboard-Action", "1");
        using (var otherOrigin = new HttpRequestMessage(HttpMethod.Post, "/api/resources/notifications/stop"))
        {
            otherOrigin.Headers.Add("Origin", "http://attacker.example");
            using var refusedOrigin = await dashboard.SendAsync(otherOrigin, Cancellation);
            Assert.Equal(System.Net.HttpStatusCode.Forbidden, refusedOrigin.StatusCode);
        }

        // A name that resolves to loopback (DNS rebinding) is not the dashboard's: the answers stay unread.
        using (var rebound = new HttpRequestMessage(HttpMethod.Get, "/api/resources/postgres/logs"))
        {
            rebound.Headers.Host = $"attacker.example:{app.DashboardUrl.Port}";
            using var refusedHost = await dashboard.SendAsync(rebound, Cancellation);
            Assert.Equal(System.Net.HttpStatusCode.MisdirectedRequest, refusedHost.StatusCode);
        }

        // A form can post text, not protobuf: no exports made up by a page.
        using (var form = await dashboard.PostAsync("/v1/traces", new StringContent("x"), Cancellation))
        {
            Assert.Equal(System.Net.HttpStatusCode.UnsupportedMediaType, form.StatusCode);
        }

        using (var refused = await dashboard.PostAsync("/api/resources/ordersdb/stop", null, Cancellation))
        {
            Assert.Equal(System.Net.HttpStatusCode.Conflict, refused.StatusCode);
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        using (var stop = await dashboard.PostAsync("/api/resources/notifications/stop", null, Cancellation))
        {
            Assert.Equal(System.Net.HttpStatusCode.Accepted, stop.StatusCode);
        }

        var stopped = await app.ResourceNotifications.WaitForResourceAsync("notifications", s => s.State == ResourceState.Stopped, timeout.Token);
        Assert.Null(stopped.Replicas.Single().Pid);
        using (var start = await dashboard.PostAsync("/api/resources/notifications/start", null, Cancellation))
        {
            Assert.Equal(System.Net.HttpStatusCode.Accepted, start.StatusCode);
        }

        await app.ResourceNotifications.WaitForResourceHealthyAsync("notifications", timeout.Token);
    }

    private static List<int> ReadPids(string runDirectory) =>
        File.ReadAllLines(Path.Combine(runDirectory, "pids"))
            .Select(line => int.Parse(line.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture))
            .ToList();
}
