using System.Buffers;
using System.Net;
using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Shop.ServiceDefaults.Correlation;

namespace Shop.Gateway.Forwarding;

/// <summary>
/// Forwards a request to one replica of a service, picked round-robin among the replicas that pass their
/// health probe and are not ejected. Bodies stream both ways, hop-by-hop headers are dropped and
/// X-Forwarded-* set. A replica that cannot be connected to (refused, or not accepted within the connect timeout) is
/// reported and the next one tried (nothing was sent, so this is safe for any method). When no replica is available,
/// those that failed their last probe or are ejected are probed again before the answer is 503
/// (<see cref="DestinationProber.RecheckAsync"/>). Only the replica's transport failures (no connection, no answer in
/// time, an answer that breaks off or stalls) count towards ejecting it; the client's own (a body that cannot be read or
/// does not arrive in time, a client gone) do not.
/// </summary>
public sealed class Forwarder(DestinationPools pools, DestinationProber prober, IOptions<ForwardingOptions> options, TimeProvider clock,
    ILogger<Forwarder> logger)
{
    private const int MaxAttempts = 3;

    // Expect too: Kestrel has already answered the client's 100-continue by reading its body, and forwarded, it would
    // have HttpClient hold the body back for a 100 from the replica.
    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
        "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Expect",
    };

    // No cookies, no decompression, no redirects: responses pass through as the service sent them. Header values go out
    // in UTF-8, as Kestrel read them: by default SocketsHttpHandler refuses any that is not ASCII, which made a client's
    // header a failure of the replica.
    private static readonly HttpMessageInvoker Http = new(new SocketsHttpHandler
    {
        RequestHeaderEncodingSelector = static (_, _) => Encoding.UTF8,
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
        var answerTime = TimeSpan.FromSeconds(settings.ServiceTimeoutSeconds.GetValueOrDefault(service, settings.TimeoutSeconds));
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        timeout.CancelAfter(answerTime);
        var body = HasBody(context.Request) ? new ClientBody(context.Request.Body) : null;
        // The Gateway's own headers (security, rate limit), which a 502 or 504 that replaces a replica's answer must keep.
        var own = context.Response.Headers.ToArray();
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
            using var request = CreateRequest(context, destination.Address, body);
            HttpResponseMessage response;
            try
            {
                response = await Http.SendAsync(request, timeout.Token);
            }
            catch (Exception) when (context.RequestAborted.IsCancellationRequested)
            {
                // The client went away: nobody to answer, and nothing the replica did (499 in logs and spans).
                context.Response.StatusCode = 499;
                return;
            }
            catch (Exception) when (body?.Failure is { } clientFault)
            {
                // Reading the client's body failed (too large when streamed, cut off, malformed): the client's fault.
                throw clientFault is BadHttpRequestException ? clientFault
                    : new BadHttpRequestException("The request body could not be read.", StatusCodes.Status400BadRequest, clientFault);
            }
            catch (HttpRequestException ex) when (ex.HttpRequestError == HttpRequestError.ConnectionError)
            {
                ConnectFailed(destination, service);
                continue;
            }
            catch (OperationCanceledException ex) when (ex.InnerException is TimeoutException && !timeout.IsCancellationRequested)
            {
                // The connection was not accepted within the connect timeout (a host that drops it, a full accept queue):
                // nothing was sent, so another replica may take the request like after a refused connection.
                ConnectFailed(destination, service);
                continue;
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && body is { Completed: false })
            {
                // The client was still sending its body when the time ran out: its slowness, not the replica's.
                await Results.Problem(statusCode: StatusCodes.Status408RequestTimeout, title: "The request body did not arrive in time.")
                    .ExecuteAsync(context);
                return;
            }
            catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException)
            {
                // Only a failure of the exchange itself is the replica's; one HttpClient raises before sending (a request it
                // cannot write) says nothing about the replica, and must not take it out.
                if (IsTransportFailure(ex))
                {
                    Failed(destination);
                }

                logger.LogWarning(ex, "Forwarding {Method} {Path} to {Service} failed", context.Request.Method, context.Request.Path, service);
                await ReplicaFailedAsync(context, service, own, timedOut: timeout.IsCancellationRequested, bodyWritten: false);
                return;
            }

            using (response)
            {
                var (broken, wrote) = await CopyResponseAsync(context, response, timeout, answerTime);
                if (broken is not null)
                {
                    // The answer broke off or stalled after its headers: a transport failure of the replica.
                    Failed(destination);
                    logger.LogWarning(broken, "The answer of {Service} at {Address} to {Method} {Path} broke off", service, destination.Address,
                        context.Request.Method, context.Request.Path);
                    await ReplicaFailedAsync(context, service, own, timedOut: broken is OperationCanceledException, bodyWritten: wrote);
                    return;
                }

                // A whole answer, a 503 included, shows the replica is up (counted only once it is whole: one counted at its
                // headers reset the failures of answers that then broke off, so those never added up to an ejection). A
                // service's own 503 says a dependency is down (Redis for a product write, say), which its other replicas
                // share: counting it would take every replica out, and with them the requests they can still serve. A
                // replica that is unready says so on /health, which the active probe acts on.
                destination.ReportSuccess();
                return;
            }
        }

        await UnavailableAsync(context, service);
    }

    /// <summary>
    /// A timeout, or an exchange that failed on the wire (an answer that ended early or was not HTTP, a connection that
    /// broke while the request was written or the answer awaited).
    /// </summary>
    private static bool IsTransportFailure(Exception ex) => ex is OperationCanceledException
        || ex is HttpRequestException { HttpRequestError: not HttpRequestError.Unknown }
        || ex.InnerException is IOException or System.Net.Sockets.SocketException;

    private void ConnectFailed(Destination destination, string service)
    {
        Failed(destination);
        logger.LogWarning("Could not connect to {Service} at {Address}; trying another replica", service, destination.Address);
    }

    /// <summary>A transport failure of the replica, counted towards its ejection.</summary>
    private void Failed(Destination destination)
    {
        var settings = options.Value;
        destination.ReportFailure(clock.GetUtcNow(), settings.FailuresToEject, TimeSpan.FromSeconds(settings.EjectSeconds));
    }

    /// <summary>
    /// Before anything was sent to the client it gets a 502 (504 when the replica did not answer in time); after, the only
    /// honest signal left is to break the connection, so that the client does not take a cut-off body for a whole one.
    /// Bytes of the body count as sent even while the response has not started: the compression of the answer holds them,
    /// and clearing the response would drop its Content-Encoding but not them, a problem after a compressed fragment.
    /// The replica's headers go; the Gateway's own (<paramref name="own"/>, set before forwarding) stay.
    /// </summary>
    private static async Task ReplicaFailedAsync(HttpContext context, string service, KeyValuePair<string, StringValues>[] own, bool timedOut,
        bool bodyWritten)
    {
        if (context.Response.HasStarted || bodyWritten)
        {
            context.Abort();
            return;
        }

        context.Response.Clear();
        foreach (var (name, value) in own)
        {
            context.Response.Headers[name] = value;
        }

        await Results.Problem(
            statusCode: timedOut ? StatusCodes.Status504GatewayTimeout : StatusCodes.Status502BadGateway,
            title: timedOut ? $"The {service} service did not answer in time." : $"The {service} service failed to answer.").ExecuteAsync(context);
    }

    private async Task UnavailableAsync(HttpContext context, string service)
    {
        var reopen = pools.All(service).Select(d => d.EjectedUntil).DefaultIfEmpty(clock.GetUtcNow()).Min() - clock.GetUtcNow();
        context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(reopen.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        await Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: $"The {service} service is unavailable.",
            detail: "No replica is healthy right now; try again shortly.").ExecuteAsync(context);
    }

    /// <summary>
    /// Copies the status, headers and body of the answer; returns the replica's failure if its body broke off or a read of
    /// it waited longer than <paramref name="readTime"/> (each read gets the whole time, so a long answer that keeps
    /// coming is not cut), and whether any of the body was written. A client that goes away ends the copy quietly.
    /// </summary>
    private static async Task<(Exception? Failure, bool Wrote)> CopyResponseAsync(HttpContext context, HttpResponseMessage response, CancellationTokenSource timeout,
        TimeSpan readTime)
    {
        context.Response.StatusCode = (int)response.StatusCode;
        // Read without parsing: an answer seldom names headers in Connection, and then nothing is allocated for it.
        string[] connection = response.Headers.NonValidated.TryGetValues("Connection", out var named)
            ? ConnectionTokens(new StringValues([.. named]))
            : [];
        foreach (var header in response.Headers.Concat(response.Content.Headers))
        {
            if (!HopByHop.Contains(header.Key) && !connection.Contains(header.Key, StringComparer.OrdinalIgnoreCase))
            {
                context.Response.Headers[header.Key] = header.Value.ToArray();
            }
        }

        // A read of the replica's answer that fails while the client is still there is the replica's failure.
        static bool ReplicaFault(Exception ex, HttpContext context) =>
            ex is IOException or HttpRequestException or OperationCanceledException && !context.RequestAborted.IsCancellationRequested;

        Stream answer;
        try
        {
            answer = await response.Content.ReadAsStreamAsync(timeout.Token);
        }
        catch (Exception ex) when (ReplicaFault(ex, context))
        {
            return (ex, false);
        }

        var wrote = false;
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            await using (answer)
            {
                while (true)
                {
                    int read;
                    try
                    {
                        timeout.CancelAfter(readTime);
                        read = await answer.ReadAsync(buffer, timeout.Token);
                    }
                    catch (Exception ex) when (ReplicaFault(ex, context))
                    {
                        return (ex, wrote);
                    }

                    // The clock is the replica's: stopped while a slow client takes the bytes, or it would run out
                    // during the write, and the next read would fail at once, blamed on the replica.
                    timeout.CancelAfter(Timeout.InfiniteTimeSpan);

                    if (read == 0)
                    {
                        return (null, wrote);
                    }

                    wrote = true;
                    await context.Response.Body.WriteAsync(buffer.AsMemory(0, read), context.RequestAborted);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException && context.RequestAborted.IsCancellationRequested)
        {
            return (null, wrote);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // A request has a body when it declares a length or is chunked (HTTP/1.1, which is all the Gateway serves).
    private static bool HasBody(HttpRequest request) => request.ContentLength > 0 || request.Headers.TransferEncoding.Count > 0;

    private static HttpRequestMessage CreateRequest(HttpContext context, Uri destination, ClientBody? body)
    {
        var incoming = context.Request;
        var request = new HttpRequestMessage(new HttpMethod(incoming.Method), new Uri(destination, $"{Escaped(incoming.PathBase)}{Escaped(incoming.Path)}{incoming.QueryString.ToUriComponent()}"))
        {
            Version = HttpVersion.Version11,
        };
        if (body is not null)
        {
            request.Content = new StreamContent(body);
        }

        // Headers named in Connection are for this hop alone (RFC 9110 7.6.1).
        var connection = incoming.Headers.Connection.Count > 0 ? ConnectionTokens(incoming.Headers.Connection) : [];
        foreach (var header in incoming.Headers)
        {
            if (HopByHop.Contains(header.Key) || header.Key.StartsWith("X-Forwarded-", StringComparison.OrdinalIgnoreCase)
                || connection.Contains(header.Key, StringComparer.OrdinalIgnoreCase))
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

    /// <summary>
    /// The path as the replica must receive it to read the same path the Gateway routed. Kestrel decoded it once (all but
    /// <c>%2F</c>), and <see cref="PathString.ToUriComponent"/> keeps what looks like an escape as it is: a client's
    /// <c>%252e%252e</c>, routed here as the text <c>%2e%2e</c>, went out as <c>%2e%2e</c>, which the replica decoded to a
    /// <c>..</c> segment that climbed out of the route's prefix. Every <c>%</c> is escaped first.
    /// </summary>
    private static string Escaped(PathString path) =>
        path.HasValue && path.Value.Contains('%', StringComparison.Ordinal) ? new PathString(path.Value.Replace("%", "%25", StringComparison.Ordinal)).ToUriComponent()
            : path.ToUriComponent();

    private static string[] ConnectionTokens(StringValues connection) =>
        [.. connection.SelectMany(value => (value ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))];
}
