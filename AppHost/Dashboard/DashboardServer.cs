using System.Text.Json;
using System.Text.Json.Serialization;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Shop.Hosting.ApplicationModel;
using Shop.Hosting.Dashboard.Otlp;
using Shop.Hosting.Orchestration;

namespace Shop.Hosting.Dashboard;

/// <summary>
/// The developer dashboard (one page plus a JSON API) and the OTLP/HTTP receiver the services export to.
/// Listens on loopback only.
/// </summary>
internal sealed class DashboardServer : IAsyncDisposable
{
    /// <summary>
    /// Sent by the dashboard's page with every action. A page of another site cannot send it without asking first (a CORS
    /// preflight, which nothing here answers), so it cannot stop a resource or replay a queue behind the developer's back.
    /// </summary>
    public const string ActionHeader = "X-Dashboard-Action";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
    };

    private readonly WebApplication _app;
    private readonly TraceStore _traces = new();
    private Orchestrator? _orchestrator;
    private bool _started;

    public DashboardServer(int port)
    {
        Url = new Uri($"http://127.0.0.1:{(port == 0 ? PortAllocator.GetFreePort() : port)}");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls(Url.ToString());
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = 16 * 1024 * 1024);
        _app = builder.Build();
        Map(_app);
    }

    public Uri Url { get; }

    /// <summary>OTLP over HTTP with protobuf, on the dashboard's own port (paths /v1/traces, /v1/metrics, /v1/logs).</summary>
    public Uri OtlpEndpoint => Url;

    public void Attach(Orchestrator orchestrator) => _orchestrator = orchestrator;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await _app.StartAsync(cancellationToken);
        _started = true;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_started)
        {
            await _app.DisposeAsync();
            return;
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(timeout.Token);
        await _app.DisposeAsync();
    }

    private Orchestrator Orchestrator => _orchestrator ?? throw new InvalidOperationException("The dashboard is not attached.");

    private void Map(WebApplication app)
    {
        app.Use(GuardAsync);
        app.MapGet("/", () => Results.Stream(
            typeof(DashboardServer).Assembly.GetManifestResourceStream("dashboard/index.html")!, "text/html; charset=utf-8"));

        var api = app.MapGroup("/api");
        api.MapGet("/resources", () => Results.Json(Orchestrator.Notifications.GetSnapshots(), Json));
        api.MapGet("/resources/{name}/logs", (string name, int? replica, int? tail) =>
            WithResource(name, runtime => Results.Json(
                runtime.Logs.Tail(Math.Clamp(tail ?? 1000, 1, 5000), replica).Select(ToDto), Json)));
        api.MapGet("/resources/{name}/logs/stream", StreamLogsAsync);
        api.MapPost("/resources/{name}/{action}", ControlAsync);
        api.MapGet("/traces", (int? limit, string? service) => Results.Json(_traces.ListTraces(Math.Clamp(limit ?? 100, 1, 1000), service), Json));
        api.MapGet("/traces/{traceId}", (string traceId) => _traces.GetTrace(traceId) is { } spans
            ? Results.Json(new { traceId, spans = spans.Select(ToDto) }, Json)
            : Results.Problem(statusCode: 404, title: "No such trace."));
        new DeadLetterCommands(() => Orchestrator.Runtimes.Select(r => r.Resource).OfType<RabbitMQServerResource>().FirstOrDefault()).Map(api);

        app.MapPost("/v1/traces", ReceiveTracesAsync);
        // Metrics and logs are accepted (so exporters do not retry or complain) but not stored yet.
        app.MapPost("/v1/metrics", () => EmptyOtlpResponse());
        app.MapPost("/v1/logs", () => EmptyOtlpResponse());
    }

    /// <summary>
    /// Loopback alone does not keep other sites out: a page the developer visits can post to 127.0.0.1 (no CORS needed for
    /// a request it does not read), and through DNS rebinding even read the answers under a name of its own. So the
    /// dashboard answers only to its own host name, an action needs <see cref="ActionHeader"/> and, when the browser names
    /// an origin, this one; an OTLP export must say it is protobuf, which no form can.
    /// </summary>
    private async Task GuardAsync(HttpContext context, RequestDelegate next)
    {
        if (Refusal(context.Request) is { } refusal)
        {
            await Results.Problem(statusCode: refusal.Status, title: refusal.Title).ExecuteAsync(context);
            return;
        }

        await next(context);
    }

    private (int Status, string Title)? Refusal(HttpRequest request)
    {
        if (!IsOwnHost(request.Host))
        {
            return (StatusCodes.Status421MisdirectedRequest, "This dashboard answers only to 127.0.0.1 and localhost.");
        }

        if (!HttpMethods.IsPost(request.Method))
        {
            return null;
        }

        if (request.Headers.Origin is [{ } origin] && !IsOwnOrigin(origin))
        {
            return (StatusCodes.Status403Forbidden, "Actions come only from the dashboard's own page.");
        }

        if (request.Path.StartsWithSegments("/api") && !request.Headers.ContainsKey(ActionHeader))
        {
            return (StatusCodes.Status403Forbidden, $"An action needs the {ActionHeader} header, which the dashboard's page sends.");
        }

        return request.Path.StartsWithSegments("/v1") && request.ContentType?.StartsWith("application/x-protobuf", StringComparison.OrdinalIgnoreCase) != true
            ? (StatusCodes.Status415UnsupportedMediaType, "OTLP exports are application/x-protobuf.")
            : null;
    }

    private bool IsOwnHost(HostString host) => host.Port == Url.Port && host.Host is "127.0.0.1" or "localhost" or "[::1]";

    private bool IsOwnOrigin(string origin) =>
        Uri.TryCreate(origin, UriKind.Absolute, out var uri) && uri.Scheme == Uri.UriSchemeHttp && IsOwnHost(new HostString(uri.Authority));

    private IResult WithResource(string name, Func<ResourceRuntime, IResult> action)
    {
        try
        {
            return action(Orchestrator.Notifications.Find(name));
        }
        catch (KeyNotFoundException)
        {
            return Results.Problem(statusCode: 404, title: "Unknown resource.", detail: $"No resource named '{name}'.");
        }
    }

    private async Task StreamLogsAsync(HttpContext context, string name, int? replica)
    {
        ResourceRuntime runtime;
        try
        {
            runtime = Orchestrator.Notifications.Find(name);
        }
        catch (KeyNotFoundException)
        {
            context.Response.StatusCode = 404;
            return;
        }

        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        await context.Response.Body.FlushAsync(context.RequestAborted);
        try
        {
            await foreach (var line in runtime.Logs.SubscribeAsync(context.RequestAborted))
            {
                if (replica is { } index && line.Replica != index)
                {
                    continue;
                }

                await context.Response.WriteAsync($"data: {JsonSerializer.Serialize(ToDto(line), Json)}\n\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task<IResult> ControlAsync(string name, string action)
    {
        Func<string, Task>? command = action switch
        {
            "start" => Orchestrator.StartResourceAsync,
            "stop" => Orchestrator.StopResourceAsync,
            "restart" => Orchestrator.RestartResourceAsync,
            _ => null,
        };
        if (command is null)
        {
            return Results.Problem(statusCode: 404, title: "Unknown action.", detail: $"'{action}' is not one of start, stop, restart.");
        }

        try
        {
            // Run in the background: a graceful stop can take seconds and the page should not wait on it.
            var running = command(name);
            if (running.IsFaulted)
            {
                await running;
            }

            return Results.Accepted();
        }
        catch (KeyNotFoundException ex)
        {
            return Results.Problem(statusCode: 404, title: "Unknown resource.", detail: ex.Message);
        }
        catch (InvalidOperationException ex)
        {
            return Results.Problem(statusCode: 409, title: "Not possible now.", detail: ex.Message);
        }
    }

    private async Task<IResult> ReceiveTracesAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer, cancellationToken);
        try
        {
            _traces.Add(OtlpTraceDecoder.Decode(buffer.ToArray()));
        }
        catch (InvalidProtocolBufferException ex)
        {
            return Results.Problem(statusCode: 400, title: "Malformed OTLP payload.", detail: ex.Message);
        }

        return EmptyOtlpResponse();
    }

    // An empty Export*ServiceResponse encodes as zero bytes.
    private static IResult EmptyOtlpResponse() => Results.Bytes([], "application/x-protobuf");

    private static object ToDto(LogLine line) => new
    {
        timestamp = line.Timestamp,
        replica = line.Replica,
        stream = line.IsError ? "stderr" : "stdout",
        text = line.Text,
    };

    private static object ToDto(SpanRecord span) => new
    {
        spanId = span.SpanId,
        parentSpanId = span.ParentSpanId,
        name = span.Name,
        service = span.ServiceName,
        instance = span.ServiceInstanceId,
        kind = span.Kind.ToString(),
        start = span.Start,
        durationMs = span.Duration.TotalMilliseconds,
        status = span.Status.ToString(),
        attributes = span.Attributes,
    };
}
