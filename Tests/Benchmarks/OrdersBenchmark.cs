using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using Shop.Hosting;

namespace Shop.Benchmarks;

/// <summary>
/// Orders benchmark: <c>dotnet run --project Tests/Benchmarks -c Release -- orders [seconds] [orders per second]</c>.
/// Places orders through the Gateway at a fixed rate (open loop: a slow answer does not slow the sender) for a
/// bounded time, then reads from ordersdb how long each order took from POST to Paid (the status timeline's own
/// timestamps) and how long its events waited in the outbox. The machine's limit in the same run: durable
/// one-row transactions per second through Npgsql, which is what every accepted order costs at least once.
/// </summary>
public static class OrdersBenchmark
{
    private const int Customers = 40;
    private const int Products = 10;

    public static async Task<int> RunAsync(DistributedApplication app, string adminPassword, TimeSpan duration, int rate)
    {
        var gateway = app.GetEndpoint("gateway");
        var ordersDb = app.GetConnectionString("ordersdb");
        var rawCommits = await RawCommitsAsync(ordersDb, clients: 16, TimeSpan.FromSeconds(5));

        using var admin = await ClientAsync(gateway, "/v1/auth/login", new { tenant = "demo", email = "admin@demo.local", password = adminPassword });
        var products = new List<Guid>();
        for (var i = 0; i < Products; i++)
        {
            using var created = await admin.PostAsJsonAsync("/v1/products", new
            {
                sku = $"BENCH-{Guid.NewGuid():N}",
                name = $"Benchmark product {i}",
                description = "",
                price = new { amount = 9.99m, currency = "EUR" },
                initialStock = 1_000_000,
            });
            created.EnsureSuccessStatusCode();
            products.Add((await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid());
        }

        var customers = new List<HttpClient>();
        for (var i = 0; i < Customers; i++)
        {
            var email = $"bench{i}-{Guid.NewGuid():N}@example.test";
            using var anonymous = new HttpClient { BaseAddress = gateway };
            (await anonymous.PostAsJsonAsync("/v1/auth/register", new { tenant = "demo", email, password = "correct horse battery", name = "Bench" })).EnsureSuccessStatusCode();
            customers.Add(await ClientAsync(gateway, "/v1/auth/login", new { tenant = "demo", email, password = "correct horse battery" }));
        }

        Console.WriteLine($"placing {rate} orders/s for {duration.TotalSeconds:F0} s through the Gateway ({Customers} customers, {Products} products)…");
        var accepted = new List<(Guid Id, double Milliseconds)>();
        var failures = new Dictionary<string, int>();
        var backlog = new List<(long Count, double OldestSeconds)>();
        using var sampling = new CancellationTokenSource();
        var sampler = SampleBacklogAsync(ordersDb, backlog, sampling.Token);
        var sends = new List<Task>();
        var watch = Stopwatch.StartNew();
        for (var i = 0; watch.Elapsed < duration; i++)
        {
            var due = TimeSpan.FromSeconds((double)i / rate);
            if (due > watch.Elapsed)
            {
                await Task.Delay(due - watch.Elapsed);
            }

            sends.Add(PlaceAsync(customers[i % Customers], products[i % Products], accepted, failures));
        }

        await Task.WhenAll(sends);
        var sendSeconds = watch.Elapsed.TotalSeconds;
        var ids = accepted.Select(a => a.Id).ToArray();
        var settled = await WaitForTerminalAsync(ordersDb, ids, TimeSpan.FromMinutes(2));
        await sampling.CancelAsync();
        await sampler;

        var toPaid = await QueryDoublesAsync(ordersDb, """
            SELECT extract(epoch FROM h.at - o.created_at) * 1000
            FROM orders o JOIN order_status_history h ON h.order_id = o.id AND h.status = 'Paid'
            WHERE o.id = ANY($1)
            """, ids);
        var outboxLag = await QueryDoublesAsync(ordersDb, """
            SELECT extract(epoch FROM sent_at - created_at) * 1000 FROM outbox_messages
            WHERE sent_at IS NOT NULL AND (payload->>'aggregateId')::uuid = ANY($1)
            """, ids);
        var statuses = await StatusCountsAsync(ordersDb, ids);
        var postLatency = accepted.Select(a => a.Milliseconds).ToList();

        Console.WriteLine();
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores; raw durable one-row transactions (Npgsql, 16 clients): {rawCommits:F0}/s");
        Console.WriteLine($"{"measure",-46} {"value",12}");
        Console.WriteLine($"{"target rate (orders/s)",-46} {rate,12}");
        Console.WriteLine($"{"accepted (202) per second",-46} {accepted.Count / sendSeconds,12:F1}");
        Console.WriteLine($"{"accepted / raw durable transactions",-46} {accepted.Count / sendSeconds / rawCommits,12:P1}");
        Console.WriteLine($"{"not accepted",-46} {string.Join(", ", failures.Select(f => $"{f.Key}: {f.Value}")),12}");
        Console.WriteLine($"{"POST answered, p50 / p95 ms",-46} {Pair(postLatency),12}");
        Console.WriteLine($"{"POST → Paid, p50 / p95 ms",-46} {Pair(toPaid),12}");
        Console.WriteLine($"{"outbox: created → published, p50 / p95 ms",-46} {Pair(outboxLag),12}");
        Console.WriteLine($"{"outbox backlog during the run, max rows",-46} {(backlog.Count == 0 ? 0 : backlog.Max(b => b.Count)),12}");
        Console.WriteLine($"{"outbox oldest unsent during the run, max s",-46} {(backlog.Count == 0 ? 0 : backlog.Max(b => b.OldestSeconds)),12:F2}");
        Console.WriteLine($"{"final statuses",-46} {string.Join(", ", statuses.Select(s => $"{s.Key}: {s.Value}")),12}");
        Console.WriteLine($"{"all terminal within 2 minutes",-46} {settled,12}");
        await PrintDependencyFailuresAsync(app);
        foreach (var customer in customers)
        {
            customer.Dispose();
        }

        return settled && statuses.GetValueOrDefault("Paid") == accepted.Count ? 0 : 1;
    }

    private static async Task PlaceAsync(HttpClient customer, Guid product, List<(Guid, double)> accepted, Dictionary<string, int> failures)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/orders")
            {
                Content = JsonContent.Create(new { items = new[] { new { productId = product, quantity = 1 } } }),
            };
            request.Headers.Add("Idempotency-Key", Guid.NewGuid().ToString("N"));
            using var response = await customer.SendAsync(request);
            var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            if (response.StatusCode == HttpStatusCode.Accepted)
            {
                var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
                lock (accepted)
                {
                    accepted.Add((id, elapsed));
                }

                return;
            }

            Count(failures, ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture));
        }
        catch (HttpRequestException ex)
        {
            Count(failures, ex.GetType().Name);
        }
    }

    /// <summary>What the 503s were: the first line of each distinct dependency failure Orders logged (from the dashboard's log API).</summary>
    private static async Task PrintDependencyFailuresAsync(DistributedApplication app)
    {
        using var dashboard = new HttpClient { BaseAddress = app.DashboardUrl };
        var logs = await dashboard.GetFromJsonAsync<JsonElement>("/api/resources/orders/logs?tail=5000");
        var failures = logs.EnumerateArray()
            .Select(l => l.TryGetProperty("text", out var text) ? text.GetString() ?? "" : "")
            .Where(t => t.Contains("Dependency failure", StringComparison.Ordinal) && t.Contains("\"Exception\":\"", StringComparison.Ordinal))
            .Select(t => t[(t.IndexOf("\"Exception\":\"", StringComparison.Ordinal) + 13)..])
            .Select(t => t.Split("\\n")[0])
            .GroupBy(t => t.Length > 160 ? t[..160] : t)
            .OrderByDescending(g => g.Count())
            .ToList();
        foreach (var failure in failures)
        {
            Console.WriteLine($"orders logged {failure.Count()}× {failure.Key}");
        }
    }

    private static void Count(Dictionary<string, int> failures, string key)
    {
        lock (failures)
        {
            failures[key] = failures.GetValueOrDefault(key) + 1;
        }
    }

    private static string Pair(List<double> values)
    {
        if (values.Count == 0)
        {
            return "-";
        }

        values.Sort();
        return string.Create(CultureInfo.InvariantCulture, $"{Percentiles.Of(values, 50):F0} / {Percentiles.Of(values, 95):F0}");
    }

    private static async Task<HttpClient> ClientAsync(Uri gateway, string path, object credentials)
    {
        var client = new HttpClient { BaseAddress = gateway };
        using var response = await client.PostAsJsonAsync(path, credentials);
        response.EnsureSuccessStatusCode();
        var token = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("accessToken").GetString();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    private static async Task SampleBacklogAsync(string connectionString, List<(long, double)> samples, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(CancellationToken.None);
        await using var sample = new NpgsqlCommand(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 FROM outbox_messages WHERE sent_at IS NULL", connection);
        while (!cancellationToken.IsCancellationRequested)
        {
            await using (var reader = await sample.ExecuteReaderAsync(CancellationToken.None))
            {
                await reader.ReadAsync(CancellationToken.None);
                samples.Add((reader.GetInt64(0), reader.GetDouble(1)));
            }

            try
            {
                await Task.Delay(250, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    private static async Task<bool> WaitForTerminalAsync(string connectionString, Guid[] ids, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            var open = (await StatusCountsAsync(connectionString, ids))
                .Where(s => s.Key is "Pending" or "StockReserved").Sum(s => s.Value);
            if (open == 0)
            {
                return true;
            }

            await Task.Delay(500);
        }

        return false;
    }

    private static async Task<Dictionary<string, int>> StatusCountsAsync(string connectionString, Guid[] ids)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT status, count(*)::int FROM orders WHERE id = ANY($1) GROUP BY status", connection);
        command.Parameters.Add(new() { Value = ids });
        await using var reader = await command.ExecuteReaderAsync();
        var counts = new Dictionary<string, int>();
        while (await reader.ReadAsync())
        {
            counts[reader.GetString(0)] = reader.GetInt32(1);
        }

        return counts;
    }

    private static async Task<List<double>> QueryDoublesAsync(string connectionString, string sql, Guid[] ids)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.Add(new() { Value = ids });
        await using var reader = await command.ExecuteReaderAsync();
        var values = new List<double>();
        while (await reader.ReadAsync())
        {
            values.Add(Convert.ToDouble(reader.GetValue(0), CultureInfo.InvariantCulture));
        }

        return values;
    }

    /// <summary>Durable single-row transactions per second (synchronous commit), the floor under any accepted order.</summary>
    private static async Task<double> RawCommitsAsync(string connectionString, int clients, TimeSpan duration)
    {
        await using var dataSource = NpgsqlDataSource.Create($"{connectionString};Maximum Pool Size={clients}");
        await using (var setup = dataSource.CreateCommand("CREATE TABLE IF NOT EXISTS bench_commits (id uuid PRIMARY KEY, at timestamptz NOT NULL)"))
        {
            await setup.ExecuteNonQueryAsync();
        }

        long count = 0;
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            while (watch.Elapsed < duration)
            {
                await using var insert = new NpgsqlCommand("INSERT INTO bench_commits VALUES ($1, now())", connection);
                insert.Parameters.Add(new() { Value = Guid.NewGuid() });
                await insert.ExecuteNonQueryAsync();
                Interlocked.Increment(ref count);
            }
        }));
        var rate = count / watch.Elapsed.TotalSeconds;
        await using (var drop = dataSource.CreateCommand("DROP TABLE bench_commits"))
        {
            await drop.ExecuteNonQueryAsync();
        }

        return rate;
    }
}
