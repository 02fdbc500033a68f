using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Shop.Hosting.ApplicationModel;
using Shop.Hosting.Testing;

namespace Shop.Benchmarks;

/// <summary>
/// Inventory benchmark: <c>dotnet run --project Tests/Benchmarks -c Release [-- seconds]</c>. Starts the whole
/// application (random ports, private data), measures this machine's limits in the same run (a near-empty Kestrel
/// request; a raw conditional UPDATE of one row through Npgsql), then product reads and reservations at 64
/// connections, and finally sells out a product of finite stock from both Inventory replicas at once and checks that
/// exactly its stock was sold. Every process it starts is stopped when it ends.
/// With <c>orders</c> first (<c>-- orders [seconds] [rate]</c>) it runs <see cref="OrdersBenchmark"/> instead.
/// </summary>
public static class BenchmarkProgram
{
    private const string AdminPassword = "Benchmark-Admin-Password-1";
    private const int Connections = 64;
    private const double PacedShare = 0.5;

    public static async Task<int> Main(string[] args)
    {
        var orders = args.Length > 0 && args[0] == "orders";
        args = orders ? args[1..] : args;
        if (!orders)
        {
            await Wrk.EnsureInstalledAsync();
        }

        var duration = TimeSpan.FromSeconds(args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : orders ? 30 : 10);
        // Children inherit the environment: lift the per-user and per-IP limits for the run (the limiter still runs).
        foreach (var policy in new[] { "anonymous", "user", "auth" })
        {
            Environment.SetEnvironmentVariable($"RateLimiting__Policies__{policy}__PermitLimit", "1000000000");
        }

        // The two tokens are fetched once: they must outlast the run (10 minutes by default; a run at -- 20 takes longer).
        Environment.SetEnvironmentVariable("Identity__AccessTokenMinutes", "60");

        var builder = await DistributedApplicationTestingBuilder.CreateAsync<global::Program>([$"--AppHost:AdminPassword={AdminPassword}"]);
        await using var app = await builder.BuildAsync();
        await app.StartAsync();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3)))
        {
            foreach (var resource in app.Resources)
            {
                await app.ResourceNotifications.WaitForResourceHealthyAsync(resource.Name, timeout.Token);
            }
        }

        if (orders)
        {
            return await OrdersBenchmark.RunAsync(app, AdminPassword, duration, args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 20);
        }

        var gateway = app.GetEndpoint("gateway");
        var inventory = app.ResourceNotifications.GetSnapshot("inventory").Replicas[0].Endpoint is { } e ? new Uri(e) : throw new InvalidOperationException();
        var userToken = await TokenAsync(gateway, "/v1/auth/login", new { tenant = "demo", email = "admin@demo.local", password = AdminPassword });
        var serviceToken = await TokenAsync(gateway, "/v1/auth/token", new
        {
            grantType = "client_credentials",
            clientId = "orders",
            clientSecret = app.Resources.OfType<ParameterResource>().Single(p => p.Name == "orders-client-secret").Value,
        });

        using var data = await BenchData.CreateAsync(app.GetConnectionString("inventorydb"));
        var rawKestrel = await RawKestrelAsync(duration);
        var alive = await Wrk.RunAsync("Kestrel: Inventory's GET /alive", new Uri(inventory, "/alive"), Connections, duration);
        var results = new List<LoadResult> { rawKestrel, alive };
        var raw16 = await RawUpdateAsync(app.GetConnectionString("inventorydb"), 16, duration);
        var raw64 = await RawUpdateAsync(app.GetConnectionString("inventorydb"), 64, duration);
        var rawSpread = await RawUpdateAsync(app.GetConnectionString("inventorydb"), 64, duration, rows: 1000);
        var statement16 = await RawReserveStatementAsync(app.GetConnectionString("inventorydb"), data.Hot, 16, duration);

        var product = new Uri($"/v1/products/{data.Spread[0]}", UriKind.Relative);
        var cpu = new CpuMeter(app);
        // The first scenario through the Gateway is the first load on three services and the AppHost's proxy at once. After
        // only the usual warm-up its rate moved by half from run to run (2,119 and 1,376 req/s, the Gateway's CPU per request
        // 0.36 and 0.64 ms), more than by hand after a longer warm-up: 15 s more, at low concurrency.
        await Wrk.WarmUpAsync(new Uri(gateway, product), 8, TimeSpan.FromSeconds(15), userToken);
        var hitViaGateway = await Wrk.RunAsync("GET product, cache hit, via Gateway", new Uri(gateway, product), Connections, duration, userToken, cpu: cpu);
        var hitDirect = await Wrk.RunAsync("GET product, cache hit, Inventory direct", new Uri(inventory, product), Connections, duration, userToken, cpu: cpu);
        results.Add(hitViaGateway);
        results.Add(hitDirect);
        results.Add(await Wrk.RunAsync("GET product, cache miss, via Gateway", gateway, Connections, duration, userToken,
            Wrk.DistinctProducts(data.MissFile(0)), Wrk.DistinctProducts(data.MissFile(1)), cpu));
        results.Add(await Wrk.RunAsync("GET product, cache miss, Inventory direct", inventory, Connections, duration, userToken,
            Wrk.DistinctProducts(data.MissFile(2)), Wrk.DistinctProducts(data.MissFile(3)), cpu));
        foreach (var miss in results.TakeLast(2).Where(r => r.RequestsPerSecond * duration.TotalSeconds > BenchData.MissBatchSize))
        {
            Console.WriteLine($"{miss.Scenario}: {miss.RequestsPerSecond * duration.TotalSeconds:F0} reads of {BenchData.MissBatchSize} products: "
                + "the reads past that were of products already read (cache hits); run shorter, or with more products");
        }

        // A checkpoint that lands in a run stalls its commits while the data files are synced: counted for each write scenario.
        var checkpoints = new List<(string Scenario, Checkpoints During)>();
        async Task<LoadResult> CountingCheckpointsAsync(Func<Task<LoadResult>> run)
        {
            var before = await CheckpointsAsync(app.GetConnectionString("inventorydb"));
            var result = await run();
            checkpoints.Add((result.Scenario, (await CheckpointsAsync(app.GetConnectionString("inventorydb"))) - before));
            return result;
        }

        var spread = await CountingCheckpointsAsync(() =>
            Wrk.RunAsync("reserve + release, 1000 products", inventory, Connections, duration, serviceToken, Wrk.ReserveAndRelease(data.SpreadFile), cpu: cpu));
        var hot = await CountingCheckpointsAsync(() =>
            Wrk.RunAsync("reserve, one hot product", inventory, Connections, duration, serviceToken, Wrk.ReserveHot(data.Hot), cpu: cpu));
        // Reservations alone: the spread row above is half releases, which take more round trips than a reservation.
        var spreadReserve = await CountingCheckpointsAsync(() =>
            Wrk.RunAsync("reserve only, 1000 products", inventory, Connections, duration, serviceToken, Wrk.ReserveSpread(data.SpreadFile), cpu: cpu));
        results.Add(spread);
        results.Add(hot);
        results.Add(spreadReserve);

        // The same scenarios offered half the rate each reached above: the latency of a service that is not saturated.
        var pacedHitViaGateway = await Wrk.RunPacedAsync($"{hitViaGateway.Scenario}, {PacedShare:P0} rate", new Uri(gateway, product), Connections, duration,
            hitViaGateway.RequestsPerSecond * PacedShare, userToken, cpu: cpu);
        var pacedHitDirect = await Wrk.RunPacedAsync($"{hitDirect.Scenario}, {PacedShare:P0} rate", new Uri(inventory, product), Connections, duration,
            hitDirect.RequestsPerSecond * PacedShare, userToken, cpu: cpu);
        var pacedSpread = await CountingCheckpointsAsync(() => Wrk.RunPacedAsync($"{spread.Scenario}, {PacedShare:P0} rate", inventory, Connections, duration,
            spread.RequestsPerSecond * PacedShare, serviceToken, Wrk.ReserveAndRelease(data.SpreadFile), cpu));
        results.AddRange([pacedHitViaGateway, pacedHitDirect, pacedSpread]);

        // How far each latency target holds: the highest offered rate at which its p95 stayed within it.
        var withinHitViaGateway = await RateWithinTargetAsync(hitViaGateway, pacedHitViaGateway, 5, rate =>
            Wrk.RunPacedAsync(hitViaGateway.Scenario, new Uri(gateway, product), Connections, duration, rate, userToken));
        var withinHitDirect = await RateWithinTargetAsync(hitDirect, pacedHitDirect, 5, rate =>
            Wrk.RunPacedAsync(hitDirect.Scenario, new Uri(inventory, product), Connections, duration, rate, userToken));
        var withinSpread = await RateWithinTargetAsync(spread, pacedSpread, 20, rate => CountingCheckpointsAsync(() =>
            Wrk.RunPacedAsync($"{spread.Scenario}, {rate:F0} req/s offered", inventory, Connections, duration, rate, serviceToken, Wrk.ReserveAndRelease(data.SpreadFile))));

        Console.WriteLine();
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores; wrk -t2 -c{Connections} -d{duration.TotalSeconds}s on loopback; everything on one machine");
        Console.WriteLine($"rows ending in \"{PacedShare:P0} rate\": each connection pauses between requests so that together they offer {PacedShare:P0} of the rate the row above reached");
        Console.WriteLine($"{"scenario",-56} {"req/s",9} {"p50 ms",8} {"p95 ms",8} {"p99 ms",8} {"errors",7} {"non-2xx",8}");
        foreach (var r in results)
        {
            Console.WriteLine($"{r.Scenario,-56} {r.RequestsPerSecond,9:F0} {Wrk.Format(r.P50),8} {Wrk.Format(r.P95),8} {Wrk.Format(r.P99),8} {r.Errors,7} {r.Non2xx,8}");
        }

        Console.WriteLine();
        Console.WriteLine("CPU ms per request in the measured run (all replicas; postgres and messaging with their child processes; apphost is this process)");
        Console.WriteLine($"{"scenario",-56} " + string.Join(" ", CpuMeter.Parts.Select(p => $"{p,9}")));
        foreach (var r in results.Where(r => r.CpuMsPerRequest is not null))
        {
            Console.WriteLine($"{r.Scenario,-56} " + string.Join(" ", CpuMeter.Parts.Select(p => $"{r.CpuMsPerRequest![p],9:F3}")));
        }

        Console.WriteLine();
        Console.WriteLine($"{"the database alone, through Npgsql",-56} {"per s",9} {"p50 ms",8} {"p95 ms",8} {"p99 ms",8}");
        foreach (var r in new[] { raw16, raw64, rawSpread })
        {
            Console.WriteLine($"{r.Scenario,-56} {r.RequestsPerSecond,9:F0} {Wrk.Format(r.P50),8} {Wrk.Format(r.P95),8} {Wrk.Format(r.P99),8}");
        }

        Console.WriteLine($"{"reservation statement alone, 16 clients",-56} {statement16,9:F0}");
        Console.WriteLine();
        Console.WriteLine("PostgreSQL checkpoints completed during each write run (their write and sync time, ms)");
        foreach (var (scenario, during) in checkpoints)
        {
            Console.WriteLine($"{scenario,-56} {during.Count,9} {during.WriteMs,9:F0} {during.SyncMs,9:F0}");
        }

        Console.WriteLine();
        Console.WriteLine($"hot-product reservations / raw UPDATE (64 clients): {hot.RequestsPerSecond / raw64.RequestsPerSecond:P0}; / raw UPDATE (16 clients): {hot.RequestsPerSecond / raw16.RequestsPerSecond:P0}; / the reservation statement alone: {hot.RequestsPerSecond / statement16:P0}");
        // Each request of that scenario is one reservation or one release: one transaction each.
        Console.WriteLine($"reserve+release requests / raw UPDATE of 1000 rows (64 clients): {spread.RequestsPerSecond / rawSpread.RequestsPerSecond:P0}; reservations and releases: {spread.RequestsPerSecond / 2:F0} each a second");
        Console.WriteLine($"cached GET direct / raw Kestrel: {hitDirect.RequestsPerSecond / rawKestrel.RequestsPerSecond:P0}; / Inventory's /alive: {hitDirect.RequestsPerSecond / alive.RequestsPerSecond:P0}");
        Console.WriteLine();
        Console.WriteLine("targets (issue 4):");
        Target("cached GET p95 <= 5 ms, Inventory direct", hitDirect, pacedHitDirect, 5, rawKestrel, withinHitDirect);
        Target("cached GET p95 <= 5 ms, via Gateway", hitViaGateway, pacedHitViaGateway, 5, rawKestrel, withinHitViaGateway);
        Target("spread reserve p95 <= 20 ms", spread, pacedSpread, 20, rawSpread, withinSpread);
        Console.WriteLine($"    reservations alone ({spreadReserve.Scenario}): {spreadReserve.RequestsPerSecond:F0} req/s, p95 {Wrk.Format(spreadReserve.P95)} ms{Unclean(spreadReserve)}");
        Console.WriteLine($"  hot-product reservations >= 50% of the raw one-row UPDATE (64 clients): {hot.RequestsPerSecond / raw64.RequestsPerSecond:P0}, "
            + $"{(hot.RequestsPerSecond >= raw64.RequestsPerSecond / 2 && IsClean(hot) ? "met" : "NOT met")}{Unclean(hot)}");

        // Oversell: a product of its own with finite stock, reserved one unit at a time from both replicas at once until
        // well past its stock. Exactly its stock must be sold (201), every other answer must be 409, and the database
        // must hold as many units reserved, by as many active reservations.
        const int sellOutStock = 2000;
        var sellOut = await data.CreateSellOutProductAsync(sellOutStock);
        var replicas = app.ResourceNotifications.GetSnapshot("inventory").Replicas.Select(r => new Uri(r.Endpoint!)).ToList();
        // At least 10 s, so that even a slow run asks for well over the stock.
        var answers = await Wrk.SellOutAsync(replicas, sellOut, Connections, duration > TimeSpan.FromSeconds(10) ? duration : TimeSpan.FromSeconds(10), serviceToken);
        var (quantity, reserved, reservations, reservedUnits) = await data.SellOutStateAsync(sellOut);
        var (sold, refused, attempts) = (answers.GetValueOrDefault(201), answers.GetValueOrDefault(409), answers.Values.Sum());
        var soldOut = attempts > sellOutStock && sold == sellOutStock && refused == attempts - sold && quantity == sellOutStock
            && reserved == sellOutStock && reservations == sellOutStock && reservedUnits == sellOutStock;
        Console.WriteLine($"oversell: {sellOutStock} units, {attempts} reservations asked for over {replicas.Count} replicas: {sold} made (201), {refused} refused (409), "
            + $"{attempts - sold - refused} other answers; the database: quantity {quantity}, reserved {reserved}, {reservations} active reservations of {reservedUnits} units: "
            + (soldOut ? "exactly the stock sold, none oversold" : attempts <= sellOutStock ? "NOT sold out (run longer)" : "MISMATCH"));
        var drift = await data.CheckOversellAsync();
        Console.WriteLine($"every product: {drift.OverQuantity} with reserved > quantity; {drift.Mismatched} whose reserved differs from their active reservations");
        return soldOut && drift.OverQuantity == 0 && drift.Mismatched == 0 ? 0 : 1;
    }

    /// <summary>A run whose every request was answered with a 2xx: only such a run can meet a target or hold a rate.</summary>
    private static bool IsClean(LoadResult run) => run.Errors == 0 && run.Non2xx == 0;

    private static string Unclean(LoadResult run) => IsClean(run) ? "" : $" ({run.Errors} errors, {run.Non2xx} non-2xx: not counted)";

    /// <param name="floor">What the machine alone does at the same 64 concurrent requests, all it can serve: the floor
    /// under any service's p95 at full load.</param>
    /// <param name="within">The paced runs of <see cref="RateWithinTargetAsync"/>, in the order they ran.</param>
    private static void Target(string target, LoadResult saturated, LoadResult paced, double p95Ms, LoadResult floor, IReadOnlyList<LoadResult> within)
    {
        Console.WriteLine($"  {target}: {Wrk.Format(saturated.P95)} ms at {saturated.RequestsPerSecond:F0} req/s (all it could serve), {(Within(saturated) ? "met" : "NOT met")}{Unclean(saturated)}; "
            + $"{Wrk.Format(paced.P95)} ms at {paced.RequestsPerSecond:F0} req/s ({paced.RequestsPerSecond / saturated.RequestsPerSecond:P0} of that), {(Within(paced) ? "met" : "NOT met")}{Unclean(paced)}; "
            + $"the machine alone at full load ({floor.Scenario}): p95 {Wrk.Format(floor.P95)} ms");
        // A closed loop (each connection sends its next request when the last is answered) has a mean latency of
        // connections / rate (Little's law). A p95 within the target therefore needs a rate above connections / target,
        // unless the slowest 5 % hold most of the wait; the rate the processes' CPU allows on this machine sits beside it.
        var needed = Connections * 1000 / p95Ms;
        var cpuMs = saturated.CpuMsPerRequest?.Values.Sum();
        Console.WriteLine($"    at {Connections} connections without pauses: mean latency {Connections * 1000 / saturated.RequestsPerSecond:F2} ms (p95 {Wrk.Format(saturated.P95)}); "
            + $"a p95 within {p95Ms} ms needs more than {needed:F0} req/s"
            + (cpuMs is > 0 ? $"; the application's CPU per request ({cpuMs:F3} ms, every process but wrk) lets {Environment.ProcessorCount} cores serve at most "
                + $"{Environment.ProcessorCount * 1000 / cpuMs.Value:F0} req/s ({Environment.ProcessorCount * 1000 / cpuMs.Value / needed:P0} of that)" : ""));
        var held = within.Where(Within).MaxBy(r => r.RequestsPerSecond);
        Console.WriteLine($"    held up to: {(held is null ? "no rate tried" : $"{held.RequestsPerSecond:F0} req/s ({held.RequestsPerSecond / saturated.RequestsPerSecond:P0})")}; "
            + "tried: " + string.Join(", ", within.Select(r => $"{r.RequestsPerSecond:F0} req/s p95 {Wrk.Format(r.P95)}{Unclean(r)}")));

        bool Within(LoadResult run) => run.P95 <= p95Ms && IsClean(run);
    }

    /// <summary>
    /// The highest rate at which a scenario keeps its p95 within the target: a bisection of the rate between none and
    /// the saturated one, from the half-rate run already made, in three more paced runs. The bounds move to the rate
    /// each run reached, which near saturation can be well above the rate it was offered (the pauses are sized from a
    /// warm-up's latency). Each rate is measured once, so one near the edge can land on either side from run to run.
    /// </summary>
    private static async Task<IReadOnlyList<LoadResult>> RateWithinTargetAsync(LoadResult saturated, LoadResult half, double p95Ms,
        Func<double, Task<LoadResult>> runAt)
    {
        var runs = new List<LoadResult> { saturated, half };
        var (low, high) = (0.0, 1.0);
        foreach (var run in runs)
        {
            (low, high) = Narrowed(low, high, run);
        }

        for (var step = 0; step < 3 && saturated.P95 > p95Ms; step++)
        {
            var run = await runAt(saturated.RequestsPerSecond * (low + high) / 2);
            runs.Add(run);
            (low, high) = Narrowed(low, high, run);
        }

        return runs;

        (double Low, double High) Narrowed(double low, double high, LoadResult run)
        {
            var share = run.RequestsPerSecond / saturated.RequestsPerSecond;
            return run.P95 <= p95Ms && IsClean(run) ? (Math.Max(low, share), high) : (low, Math.Min(high, share));
        }
    }

    /// <summary>The machine's own HTTP limit: Kestrel in this process answering a constant, with no middleware at all.</summary>
    private static async Task<LoadResult> RawKestrelAsync(TimeSpan duration)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var raw = builder.Build();
        raw.MapGet("/", () => "ok");
        await raw.StartAsync();
        return await Wrk.RunAsync("Kestrel: raw endpoint (machine limit)", new Uri(raw.Urls.First()), Connections, duration);
    }

    /// <summary>
    /// What the database alone allows a hot product: the service's reservation statement (stock, reservation, item
    /// and outbox rows, with the triggers) run through Npgsql with no HTTP in front. Its outbox rows are written as
    /// already sent, so the relay leaves them alone; the reservations are real and keep stock and reservations consistent.
    /// </summary>
    private static async Task<double> RawReserveStatementAsync(string connectionString, Guid product, int clients, TimeSpan duration)
    {
        await using var dataSource = NpgsqlDataSource.Create($"{connectionString};Maximum Pool Size={clients};Max Auto Prepare=8");
        long count = 0;
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            while (watch.Elapsed < duration)
            {
                await using var reserve = new NpgsqlCommand("""
                    WITH taken AS (
                        UPDATE stock SET reserved = reserved + 1, version = version + 1, updated_at = now()
                        WHERE product_id = $1 AND quantity - reserved >= 1
                          AND EXISTS (SELECT 1 FROM products p WHERE p.id = stock.product_id AND p.deleted_at IS NULL AND p.active)
                          AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.order_id = $3)
                        RETURNING tenant_id),
                    reservation AS (
                        INSERT INTO reservations (id, tenant_id, order_id, status, request_hash, expires_at, created_at, updated_at)
                        SELECT $2, tenant_id, $3, 'Active', 'benchmark', now() + interval '1 day', now(), now() FROM taken
                        RETURNING id),
                    announced AS (
                        INSERT INTO outbox_messages (event_id, exchange, routing_key, payload, created_at, next_attempt_at, sent_at)
                        SELECT $4, 'inventory.events', 'inventory.reserved', '{"benchmark":true}'::jsonb, now(), now(), now() FROM taken)
                    INSERT INTO reservation_items (reservation_id, product_id, quantity)
                    SELECT id, $1, 1 FROM reservation
                    """, connection);
                reserve.Parameters.Add(new() { Value = product });
                reserve.Parameters.Add(new() { Value = Guid.NewGuid() });
                reserve.Parameters.Add(new() { Value = Guid.NewGuid() });
                reserve.Parameters.Add(new() { Value = Guid.NewGuid() });
                await reserve.ExecuteNonQueryAsync();
                Interlocked.Increment(ref count);
            }
        }));
        return count / watch.Elapsed.TotalSeconds;
    }

    private sealed record Checkpoints(long Count, double WriteMs, double SyncMs)
    {
        public static Checkpoints operator -(Checkpoints after, Checkpoints before) =>
            new(after.Count - before.Count, after.WriteMs - before.WriteMs, after.SyncMs - before.SyncMs);
    }

    /// <summary>The server's checkpoint counters so far (PostgreSQL 15 keeps them in <c>pg_stat_bgwriter</c>).</summary>
    private static async Task<Checkpoints> CheckpointsAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var read = new NpgsqlCommand(
            "SELECT checkpoints_timed + checkpoints_req, checkpoint_write_time, checkpoint_sync_time FROM pg_stat_bgwriter", connection);
        await using var reader = await read.ExecuteReaderAsync();
        await reader.ReadAsync();
        return new Checkpoints(reader.GetInt64(0), reader.GetDouble(1), reader.GetDouble(2));
    }

    private static async Task<string> TokenAsync(Uri gateway, string path, object body)
    {
        using var client = new HttpClient { BaseAddress = gateway };
        using var response = await client.PostAsJsonAsync(path, body);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("accessToken").GetString()!;
    }

    /// <summary>
    /// The database's own ceiling: autocommit conditional UPDATEs, all of one row (the hot-product case) or each of a
    /// random one of 1,000 rows (the spread case, where concurrent commits can share a WAL flush). Each statement's
    /// time is kept too: at this many clients, the latency of the database alone, with no HTTP and no service.
    /// </summary>
    private static async Task<LoadResult> RawUpdateAsync(string connectionString, int clients, TimeSpan duration, int rows = 1)
    {
        await using var dataSource = NpgsqlDataSource.Create($"{connectionString};Maximum Pool Size={clients};Max Auto Prepare=8");
        await using (var setup = dataSource.CreateCommand($"""
            DROP TABLE IF EXISTS bench_rows; CREATE TABLE bench_rows (id int PRIMARY KEY, quantity int NOT NULL, reserved int NOT NULL);
            INSERT INTO bench_rows SELECT g, 2000000000, 0 FROM generate_series(1, {rows}) g
            """))
        {
            await setup.ExecuteNonQueryAsync();
        }

        var watch = Stopwatch.StartNew();
        var perClient = await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
        {
            var ticks = new List<long>();
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var update = new NpgsqlCommand("UPDATE bench_rows SET reserved = reserved + 1 WHERE id = $1 AND quantity - reserved >= 1", connection);
            var id = new NpgsqlParameter<int>();
            update.Parameters.Add(id);
            while (watch.Elapsed < duration)
            {
                id.TypedValue = Random.Shared.Next(1, rows + 1);
                var started = Stopwatch.GetTimestamp();
                await update.ExecuteNonQueryAsync();
                ticks.Add(Stopwatch.GetTimestamp() - started);
            }

            return ticks;
        }));
        var elapsed = watch.Elapsed;
        await using (var drop = dataSource.CreateCommand("DROP TABLE bench_rows"))
        {
            await drop.ExecuteNonQueryAsync();
        }

        var milliseconds = perClient.SelectMany(t => t).Select(ticks => ticks * 1000.0 / Stopwatch.Frequency).Order().ToArray();
        return new LoadResult($"raw conditional UPDATE, {(rows == 1 ? "one row" : $"{rows} rows")}, {clients} clients", milliseconds.Length / elapsed.TotalSeconds,
            Percentiles.Of(milliseconds, 50), Percentiles.Of(milliseconds, 95), Percentiles.Of(milliseconds, 99), 0, 0);
    }
}
