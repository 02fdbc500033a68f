using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Shop.Benchmarks;

/// <param name="CpuMsPerRequest">Milliseconds of CPU per request by part of the application (<see cref="CpuMeter"/>), when measured.</param>
public sealed record LoadResult(string Scenario, double RequestsPerSecond, double P50, double P95, double P99, long Errors, long Non2xx,
    IReadOnlyDictionary<string, double>? CpuMsPerRequest = null);

/// <summary>Runs wrk on loopback for a bounded time and reads its numbers from a Lua report.</summary>
internal static class Wrk
{
    private const string Report = """

        done = function(summary, latency, requests)
          local answers = {}
          for _, thread in ipairs(counted_threads or {}) do
            for status, count in pairs(thread:get("answers") or {}) do answers[status] = (answers[status] or 0) + count end
          end
          local all = {}
          for status, count in pairs(answers) do all[#all + 1] = status .. "x" .. count end
          io.write(string.format("JSON{\"requests\":%d,\"seconds\":%f,\"errors\":%d,\"status\":%d,\"mean\":%f,\"p50\":%f,\"p95\":%f,\"p99\":%f,\"answers\":\"%s\"}\n",
            summary.requests, summary.duration / 1e6,
            summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status,
            latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
            table.concat(all, " ")))
        end
        """;

    /// <summary>Installs wrk from Debian's packages when it is not on PATH, as <c>./shop</c> installs the servers.</summary>
    public static async Task EnsureInstalledAsync()
    {
        if (OnPath("wrk"))
        {
            return;
        }

        Console.WriteLine("Installing wrk from Debian's packages");
        await RunAsync("apt-get", "update", "-qq");
        await RunAsync("apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk");
        if (!OnPath("wrk"))
        {
            throw new InvalidOperationException("wrk is still not on PATH after apt-get install wrk.");
        }

        static bool OnPath(string name) =>
            (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries).Any(dir => File.Exists(Path.Combine(dir, name)));

        static async Task RunAsync(params string[] command)
        {
            var start = Environment.IsPrivilegedProcess ? new ProcessStartInfo(command[0]) : new ProcessStartInfo("sudo") { ArgumentList = { command[0] } };
            foreach (var argument in command[1..])
            {
                start.ArgumentList.Add(argument);
            }

            start.Environment["DEBIAN_FRONTEND"] = "noninteractive";
            using var process = Process.Start(start) ?? throw new InvalidOperationException($"{command[0]} could not be started.");
            await process.WaitForExitAsync();
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"{string.Join(' ', command)} exited with {process.ExitCode}.");
            }
        }
    }

    /// <summary>
    /// A discarded warm-up, first at 8 connections (tiered JIT needs spare CPU) and then at full concurrency (so
    /// pools, caches and the JIT's second tier are in their steady state), then the measured run. Every connection
    /// sends its next request as soon as the last one is answered: the run finds the scenario's highest rate, and
    /// its latencies are mostly the time a request waits for a core.
    /// </summary>
    /// <param name="warmupScript">For scenarios that must not repeat a request (cache misses): another set of requests.</param>
    /// <param name="cpu">When given, the CPU each part of the application spends in the measured run is reported per request.</param>
    public static async Task<LoadResult> RunAsync(string scenario, Uri url, int connections, TimeSpan duration, string? token = null,
        string script = "", string? warmupScript = null, CpuMeter? cpu = null)
    {
        await RunOnceAsync(url, Math.Min(8, connections), TimeSpan.FromSeconds(5), token, warmupScript ?? script);
        await RunOnceAsync(url, connections, TimeSpan.FromSeconds(5), token, warmupScript ?? script);
        return await MeasureAsync(scenario, url, connections, duration, token, script, cpu);
    }

    /// <summary>A discarded run, to warm a path up before its first measured scenario.</summary>
    public static Task WarmUpAsync(Uri url, int connections, TimeSpan duration, string? token = null) =>
        RunOnceAsync(url, connections, duration, token, script: "");

    /// <summary>
    /// The same connections, each waiting a random pause (uniform, so that they do not move in step) before its next
    /// request, sized so that all of them together offer <paramref name="rate"/> requests a second. A 5-second
    /// paced warm-up measures the mean latency, which the pauses of the measured run then leave out. The latencies are
    /// those of a service that is not saturated; the pause is not counted in them.
    /// </summary>
    public static async Task<LoadResult> RunPacedAsync(string scenario, Uri url, int connections, TimeSpan duration, double rate,
        string? token = null, string script = "", CpuMeter? cpu = null)
    {
        var cycleMs = connections * 1000.0 / rate;
        var warmup = await RunOnceAsync(url, connections, TimeSpan.FromSeconds(5), token, script + Pacing(cycleMs));
        var pauseMs = Math.Max(0, cycleMs - warmup.GetProperty("mean").GetDouble());
        return await MeasureAsync(scenario, url, connections, duration, token, script + Pacing(pauseMs), cpu);
    }

    /// <summary>Each wrk thread seeds its own generator, so that the two threads' connections do not pause in step.</summary>
    private static string Pacing(double meanPauseMs) => string.Create(CultureInfo.InvariantCulture, $$"""

        local seeded = false
        delay = function()
          if not seeded then
            math.randomseed(os.time() + math.floor(os.clock() * 1000000))
            seeded = true
          end
          return math.floor(math.random() * 2 * {{meanPauseMs:F3}} + 0.5)
        end
        """);

    private static async Task<LoadResult> MeasureAsync(string scenario, Uri url, int connections, TimeSpan duration, string? token,
        string script, CpuMeter? cpu)
    {
        var before = cpu?.Sample();
        var json = await RunOnceAsync(url, connections, duration, token, script);
        var after = cpu?.Sample();
        var seconds = json.GetProperty("seconds").GetDouble();
        var requests = json.GetProperty("requests").GetInt64();
        if (Answers(json).Where(a => a.Key >= 300).ToList() is { Count: > 0 } failed)
        {
            Console.WriteLine($"{scenario}: answers that were not 2xx, status x count: {string.Join(" ", failed.Select(a => $"{a.Key}x{a.Value}"))}");
        }

        return new LoadResult(scenario, requests / seconds,
            json.GetProperty("p50").GetDouble(), json.GetProperty("p95").GetDouble(), json.GetProperty("p99").GetDouble(),
            json.GetProperty("errors").GetInt64(), json.GetProperty("status").GetInt64(),
            before is null || after is null ? null : CpuMeter.PerRequest(before, after, requests));
    }

    private static async Task<JsonElement> RunOnceAsync(Uri url, int connections, TimeSpan duration, string? token, string script)
    {
        var file = Path.GetTempFileName();
        // Order ids start with this, unique to each wrk process: no run repeats another's ids (see PostHelpers).
        await File.WriteAllTextAsync(file, $"run_id = \"{Guid.NewGuid():N}\"\n" + script + Report);
        try
        {
            var start = new ProcessStartInfo("wrk") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var argument in new[] { "-t2", $"-c{connections}", $"-d{(int)duration.TotalSeconds}s", "--timeout", "5s", "-s", file })
            {
                start.ArgumentList.Add(argument);
            }

            if (token is not null)
            {
                start.ArgumentList.Add("-H");
                start.ArgumentList.Add($"Authorization: Bearer {token}");
            }

            start.ArgumentList.Add(url.ToString());
            using var wrk = Process.Start(start) ?? throw new InvalidOperationException("wrk could not be started (apt-get install wrk).");
            var output = await wrk.StandardOutput.ReadToEndAsync();
            await wrk.WaitForExitAsync();
            var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("JSON", StringComparison.Ordinal))
                ?? throw new InvalidOperationException($"wrk printed no report: {output}{await wrk.StandardError.ReadToEndAsync()}");
            return JsonDocument.Parse(line[4..]).RootElement.Clone();
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>
    /// Each request takes the next id of its thread's half of the list (wrk runs two threads): every GET is a first read
    /// until a thread has used its half, after which it starts its half again.
    /// </summary>
    public static string DistinctProducts(string idsFile) => $$"""
        local ids = {}
        for line in io.lines("{{idsFile}}") do ids[#ids + 1] = line end
        local threads = 0
        setup = function(thread) thread:set("offset", threads) threads = threads + 1 end
        local i = 0
        request = function()
          local half = math.floor(#ids / 2)
          local index = (offset or 0) * half + i % half + 1
          i = i + 1
          return wrk.format("GET", "/v1/products/" .. ids[index])
        end
        """;

    /// <summary>
    /// Single-unit reservations of one product, sent at once to every replica (one wrk each, the connections shared
    /// out): each answer's status is counted, so the units sold can be set against the stock and the database.
    /// </summary>
    public static async Task<IReadOnlyDictionary<int, long>> SellOutAsync(IReadOnlyList<Uri> replicas, Guid product, int connections, TimeSpan duration,
        string token)
    {
        var runs = await Task.WhenAll(replicas.Select(replica =>
            RunOnceAsync(replica, connections / replicas.Count, duration, token, ReserveHot(product))));
        var answers = new Dictionary<int, long>();
        foreach (var run in runs)
        {
            if (run.GetProperty("errors").GetInt64() > 0)
            {
                throw new InvalidOperationException($"The sell-out lost {run.GetProperty("errors").GetInt64()} requests (connect, read, write or timeout errors): their answers are unknown.");
            }

            foreach (var (status, count) in Answers(run))
            {
                answers[status] = answers.GetValueOrDefault(status) + count;
            }
        }

        return answers;
    }

    /// <summary>The report's count of answers by status (scripts that count them: <see cref="PostHelpers"/>), "201x2000 409x5888".</summary>
    private static IEnumerable<KeyValuePair<int, long>> Answers(JsonElement report) =>
        report.GetProperty("answers").GetString()!.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(pair => pair.Split('x')).Select(parts =>
            KeyValuePair.Create(int.Parse(parts[0], CultureInfo.InvariantCulture), long.Parse(parts[1], CultureInfo.InvariantCulture)));

    /// <summary>Reserve one unit of a random product, then release it on a later request of the same thread.</summary>
    public static string ReserveAndRelease(string idsFile) => PostHelpers + "\n" + $$"""
        local ids = {}
        for line in io.lines("{{idsFile}}") do ids[#ids + 1] = line end
        local pending = {}
        request = function()
          if #pending > 0 then
            return wrk.format("POST", "/v1/reservations/" .. table.remove(pending) .. "/release")
          end
          local body = '{"orderId":"' .. uuid() .. '","items":[{"productId":"' .. ids[math.random(#ids)] .. '","quantity":1}]}'
          return wrk.format("POST", "/v1/reservations", json_headers(), body)
        end
        response = function(status, headers, body)
          count_answer(status)
          if status == 201 then
            local id = body:match('"id":"([^"]+)"')
            if id then pending[#pending + 1] = id end
          end
        end
        """;

    /// <summary>Reserve one unit of a random product of the list, and keep it: each request is one reservation.</summary>
    public static string ReserveSpread(string idsFile) => PostHelpers + "\n" + $$"""
        local ids = {}
        for line in io.lines("{{idsFile}}") do ids[#ids + 1] = line end
        request = function()
          local body = '{"orderId":"' .. uuid() .. '","items":[{"productId":"' .. ids[math.random(#ids)] .. '","quantity":1}]}'
          return wrk.format("POST", "/v1/reservations", json_headers(), body)
        end
        response = function(status) count_answer(status) end
        """;

    public static string ReserveHot(Guid product) => PostHelpers + "\n" + $$"""
        request = function()
          local body = '{"orderId":"' .. uuid() .. '","items":[{"productId":"{{product}}","quantity":1}]}'
          return wrk.format("POST", "/v1/reservations", json_headers(), body)
        end
        response = function(status) count_answer(status) end
        """;

    /// <summary>
    /// JSON POSTs that keep the -H headers; order ids that no other request of any run has (the wrk process's own
    /// <c>run_id</c>, the thread's number and a counter: random ids seeded from the clock could repeat across threads
    /// and runs, and a repeated id is a repeat, not a reservation); and a count of the answers by status, which the
    /// report prints (all of them, and those that were not 2xx).
    /// </summary>
    private const string PostHelpers = """
        local function json_headers()
          -- wrk.format replaces wrk.headers (which holds -H Authorization) when given a table: copy them in.
          local h = {}
          for name, value in pairs(wrk.headers) do h[name] = value end
          h["Content-Type"] = "application/json"
          return h
        end
        counted_threads = {}
        setup = function(thread)
          counted_threads[#counted_threads + 1] = thread
          thread:set("thread_number", #counted_threads)
        end
        local issued = 0
        local function uuid()
          issued = issued + 1
          return string.format("%s-%04x-4000-8000-%012x", string.sub(run_id, 1, 8), thread_number, issued)
        end
        answers = {}
        local function count_answer(status)
          answers[status] = (answers[status] or 0) + 1
        end
        init = function() math.randomseed(os.time() + math.floor(os.clock() * 1000000) + thread_number * 7919) end
        """;

    public static string Format(double value) => value.ToString("F2", CultureInfo.InvariantCulture);
}
