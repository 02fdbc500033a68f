using System.Net;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace Shop.Gateway.Forwarding;

/// <summary>
/// Forwards a request to a service (<c>http://{service}</c>, resolved over its replicas by service discovery):
/// bodies stream both ways, hop-by-hop headers are dropped and X-Forwarded-* are set. Failures of the
/// destination become problem details (502, 503, 504), never a 500.
/// </summary>
public sealed class Forwarder(IHttpClientFactory clients, ILogger<Forwarder> logger)
{
    public const string ClientName = "forwarder";

    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
        "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Host",
    };

    public async Task ForwardAsync(HttpContext context, string service)
    {
        using var request = CreateRequest(context, service);
        var client = clients.CreateClient(ClientName);
        HttpResponseMessage response;
        try
        {
            response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, context.RequestAborted);
        }
        catch (Exception ex) when (!context.RequestAborted.IsCancellationRequested)
        {
            var (status, title) = ex switch
            {
                BrokenCircuitException => (StatusCodes.Status503ServiceUnavailable, $"The {service} service is unavailable."),
                TimeoutRejectedException or TaskCanceledException => (StatusCodes.Status504GatewayTimeout, $"The {service} service did not answer in time."),
                _ => (StatusCodes.Status502BadGateway, $"The {service} service could not be reached."),
            };
            logger.LogWarning(ex, "Forwarding {Method} {Path} to {Service} failed", context.Request.Method, context.Request.Path, service);
            await Results.Problem(statusCode: status, title: title).ExecuteAsync(context);
            return;
        }

        using (response)
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
    }

    private static HttpRequestMessage CreateRequest(HttpContext context, string service)
    {
        var incoming = context.Request;
        var request = new HttpRequestMessage(new HttpMethod(incoming.Method), $"http://{service}{incoming.Path}{incoming.QueryString}")
        {
            Version = HttpVersion.Version11,
        };
        if (incoming.ContentLength > 0 || incoming.Headers.TransferEncoding.Count > 0)
        {
            request.Content = new StreamContent(incoming.Body);
        }

        foreach (var header in incoming.Headers)
        {
            if (HopByHop.Contains(header.Key))
            {
                continue;
            }

            if (!request.Headers.TryAddWithoutValidation(header.Key, header.Value.ToArray()))
            {
                request.Content?.Headers.TryAddWithoutValidation(header.Key, header.Value.ToArray());
            }
        }

        // Trace context is written by HttpClient's own instrumentation for the outgoing span.
        request.Headers.Remove("traceparent");
        request.Headers.Remove("tracestate");
        var remote = context.Connection.RemoteIpAddress?.ToString();
        var forwardedFor = incoming.Headers["X-Forwarded-For"].ToString();
        request.Headers.TryAddWithoutValidation("X-Forwarded-For", string.IsNullOrEmpty(forwardedFor) ? remote : $"{forwardedFor}, {remote}");
        request.Headers.TryAddWithoutValidation("X-Forwarded-Proto", incoming.Scheme);
        request.Headers.TryAddWithoutValidation("X-Forwarded-Host", incoming.Host.Value);
        return request;
    }
}
