using System.Net;
using Microsoft.Extensions.Options;
using Shop.ServiceDefaults.Correlation;

namespace Shop.Gateway.Forwarding;

/// <summary>
/// Forwards a request to one replica of a service, picked round-robin among the replicas that pass their
/// health probe and are not ejected. Bodies stream both ways, hop-by-hop headers are dropped and
/// X-Forwarded-* set. A replica that cannot be connected to is reported and the next one tried (nothing was
/// sent, so this is safe for any method). When no replica is available, those that failed their last probe or are
/// ejected are probed again before the answer is 503 (<see cref="DestinationProber.RecheckAsync"/>). Only transport
/// failures (no connection, no answer in time, a broken answer) count towards ejecting a replica.
/// </summary>
public sealed class Forwarder(DestinationPools pools, DestinationProber prober, IOptions<ForwardingOptions> options, TimeProvider clock,
    ILogger<Forwarder> logger)
{
    private const int MaxAttempts = 3;

    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
        "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Host",
    };

    // No cookies, no decompression, no redirects: responses pass through as the service sent them.
    private static readonly HttpMessageInvoker Http = new(new SocketsHttpHandler
    {
        UseCookies = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseProxy = false,
        ConnectTimeout = TimeSpan.FromSeconds(2),
        PooledConnectionLifetime = TimeSpan.FromMinutes(2),
        MaxConnectionsPerServer = 256,
    });

    public async Task ForwardAsync(HttpContext context, string service)
    {
        var settings = options.Value;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        timeout.CancelAfter(TimeSpan.FromSeconds(settings.ServiceTimeoutSeconds.GetValueOrDefault(service, settings.TimeoutSeconds)));
        var tried = new List<Destination>();
        while (tried.Count < MaxAttempts)
        {
            var destination = pools.Pick(service, clock.GetUtcNow(), tried);
            if (destination is null && tried.Count == 0)
            {
                await prober.RecheckAsync(service, context.RequestAborted);
                destination = pools.Pick(service, clock.GetUtcNow(), tried);
            }

            if (destination is null)
            {
                await UnavailableAsync(context, service);
                return;
            }

            tried.Add(destination);
            using var request = CreateRequest(context, destination.Address);
            HttpResponseMessage response;
            try
            {
                response = await Http.SendAsync(request, timeout.Token);
            }
            catch (HttpRequestException ex) when (ex.InnerException is BadHttpRequestException tooLargeOrMalformed)
            {
                // Reading the client's body failed (too large when streamed, or cut off): the client's fault, not the service's.
                throw tooLargeOrMalformed;
            }
            catch (HttpRequestException ex) when (ex.HttpRequestError == HttpRequestError.ConnectionError)
            {
                destination.ReportFailure(clock.GetUtcNow(), settings.FailuresToEject, TimeSpan.FromSeconds(settings.EjectSeconds));
                logger.LogWarning("Could not connect to {Service} at {Address}; trying another replica", service, destination.Address);
                continue;
            }
            catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException && !context.RequestAborted.IsCancellationRequested)
            {
                destination.ReportFailure(clock.GetUtcNow(), settings.FailuresToEject, TimeSpan.FromSeconds(settings.EjectSeconds));
                var timedOut = timeout.IsCancellationRequested;
                logger.LogWarning(ex, "Forwarding {Method} {Path} to {Service} failed", context.Request.Method, context.Request.Path, service);
                await Results.Problem(
                    statusCode: timedOut ? StatusCodes.Status504GatewayTimeout : StatusCodes.Status502BadGateway,
                    title: timedOut ? $"The {service} service did not answer in time." : $"The {service} service failed to answer.").ExecuteAsync(context);
                return;
            }

            using (response)
            {
                // Any answer, a 503 included, shows the replica is up. A service's own 503 says a dependency is down
                // (Redis for a product write, say), which its other replicas share: counting it would take every
                // replica out, and with them the requests they can still serve. A replica that is unready says so on
                // /health, which the active probe acts on.
                destination.ReportSuccess();
                await CopyResponseAsync(context, response);
                return;
            }
        }

        await UnavailableAsync(context, service);
    }

    private async Task UnavailableAsync(HttpContext context, string service)
    {
        var reopen = pools.All(service).Select(d => d.EjectedUntil).DefaultIfEmpty(clock.GetUtcNow()).Min() - clock.GetUtcNow();
        context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(reopen.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        await Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: $"The {service} service is unavailable.",
            detail: "No replica is healthy right now; try again shortly.").ExecuteAsync(context);
    }

    private static async Task CopyResponseAsync(HttpContext context, HttpResponseMessage response)
    {
        context.Response.StatusCode = (int)response.StatusCode;
        foreach (var header in response.Headers.Concat(response.Content.Headers))
        {
            if (!HopByHop.Contains(header.Key))
            {
                context.Response.Headers[header.Key] = header.Value.ToArray();
            }
        }

        await response.Content.CopyToAsync(context.Response.Body, context.RequestAborted);
    }

    private static HttpRequestMessage CreateRequest(HttpContext context, Uri destination)
    {
        var incoming = context.Request;
        var request = new HttpRequestMessage(new HttpMethod(incoming.Method), new Uri(destination, $"{incoming.PathBase.ToUriComponent()}{incoming.Path.ToUriComponent()}{incoming.QueryString.ToUriComponent()}"))
        {
            Version = HttpVersion.Version11,
        };
        if (incoming.ContentLength > 0 || incoming.Headers.TransferEncoding.Count > 0)
        {
            request.Content = new StreamContent(incoming.Body);
        }

        foreach (var header in incoming.Headers)
        {
            if (HopByHop.Contains(header.Key) || header.Key.StartsWith("X-Forwarded-", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            if (!request.Headers.TryAddWithoutValidation(header.Key, header.Value.ToArray()))
            {
                request.Content?.Headers.TryAddWithoutValidation(header.Key, header.Value.ToArray());
            }
        }

        // Trace context is written by HttpClient's own instrumentation for the outgoing span; the correlation id is ours.
        request.Headers.Remove("traceparent");
        request.Headers.Remove("tracestate");
        request.Headers.Remove(CorrelationContext.HeaderName);
        request.Headers.TryAddWithoutValidation(CorrelationContext.HeaderName, CorrelationContext.Current);
        request.Headers.TryAddWithoutValidation("X-Forwarded-For", context.Connection.RemoteIpAddress?.ToString());
        request.Headers.TryAddWithoutValidation("X-Forwarded-Proto", incoming.Scheme);
        request.Headers.TryAddWithoutValidation("X-Forwarded-Host", incoming.Host.Value);
        return request;
    }
}
