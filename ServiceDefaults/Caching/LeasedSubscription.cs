using System.Globalization;
using System.Net;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Shop.ServiceDefaults.Caching;

/// <summary>
/// A Redis channel whose messages a replica must have applied before it may answer from its own memory, held as a lease
/// (ADR 0008). The replica PINGs on its subscription a few times a lease; Redis answers in the same stream as the
/// messages, after every message published before the PING. Having read the answer to a PING sent at <c>t</c>, the replica
/// has applied every message published before <c>t</c>, so what it holds is good until <c>t + lease</c>
/// (<see cref="OnConfirmed"/>). A publisher waits one lease after its message reached Redis: by then every replica has
/// either applied it or stopped answering from memory. A subscription that is lost, or stops answering, is reported with
/// <see cref="OnLost"/> and made again.
/// </summary>
public abstract class LeasedSubscription(string redisConnectionString, string channel, TimeSpan lease, TimeProvider clock, ILogger logger)
    : BackgroundService
{
    protected ILogger Logger => logger;

    /// <summary>
    /// A publisher's wait after its message reached Redis: then no replica can answer from memory without it. Leases are
    /// counted on the timestamp clock, while a delay runs on a coarser one and can end a few milliseconds early, so the
    /// wait is measured on the timestamp clock and topped up until a whole lease has passed there.
    /// </summary>
    protected async Task WaitOneLeaseAsync()
    {
        var start = clock.GetTimestamp();
        await Task.Delay(lease, clock);
        while (clock.GetElapsedTime(start) < lease)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(1), clock);
        }
    }

    /// <summary>What the channel carries, for the logs ("Product invalidation").</summary>
    protected abstract string What { get; }

    /// <summary>Subscribed, before any PING is sent: forget what may have missed messages, and load what must be known.</summary>
    protected abstract Task OnSubscribedAsync(CancellationToken cancellationToken);

    protected abstract void OnMessage(string payload);

    /// <summary>Every message published before a PING sent at <paramref name="sentAt"/> (a <see cref="TimeProvider"/> timestamp) is applied.</summary>
    protected abstract void OnConfirmed(long sentAt);

    /// <summary>The subscription is gone: nothing held may be trusted until the next one is confirmed.</summary>
    protected abstract void OnLost();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (lease <= TimeSpan.Zero)
        {
            return;
        }

        var options = ConfigurationOptions.Parse(redisConnectionString);
        if (Unusable(options) is { } why)
        {
            // Never held, the lease never lets this replica answer from memory: every answer comes from the shared store.
            logger.LogWarning("{What}s are not held in memory on this replica: {Reason}", What, why);
            return;
        }

        var (host, port) = options.EndPoints[0] switch
        {
            DnsEndPoint dns => (dns.Host, dns.Port),
            IPEndPoint ip => (ip.Address.ToString(), ip.Port),
            var other => throw new InvalidOperationException($"Unsupported Redis endpoint {other}."),
        };

        var retry = TimeSpan.Zero;
        while (!stoppingToken.IsCancellationRequested)
        {
            var subscribed = false;
            try
            {
                await RunSessionAsync(host, port, options.Password, () => subscribed = true, stoppingToken);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning(ex, "{What} subscription lost; answering from the shared store until it is back", What);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            finally
            {
                OnLost();
            }

            // After a session that was up, try again soon; failures to subscribe back off, up to 5 s.
            retry = subscribed ? TimeSpan.FromMilliseconds(100) : TimeSpan.FromMilliseconds(Math.Clamp(retry.TotalMilliseconds * 2, 100, 5000));
            try
            {
                await Task.Delay(retry, clock, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Why the subscription could not keep the lease's promise on this connection string, or null when it can. It speaks
    /// plain RESP to one server: over TLS it could not connect at all (it would retry for ever, and say so every few
    /// seconds). With several servers, or a sentinel's service, the first named may be a replica: a PUBLISH goes to the
    /// primary, and the replica could answer a PING sent after it before the message reached it, so a replica would answer
    /// from memory with a write it has not seen.
    /// </summary>
    internal static string? Unusable(ConfigurationOptions options) => options switch
    {
        { Ssl: true } => "the subscription does not speak TLS (ssl=true)",
        { ServiceName: { Length: > 0 } } => "a sentinel's service names no one primary to subscribe on (serviceName)",
        { EndPoints.Count: not 1 } => $"the subscription needs the one primary that PUBLISH reaches, not {options.EndPoints.Count} servers",
        _ => null,
    };

    private async Task RunSessionAsync(string host, int port, string? password, Action subscribed, CancellationToken stoppingToken)
    {
        await using var subscription = await RespSubscription.ConnectAsync(host, port, password, [channel], stoppingToken);
        // Messages published from here on wait in the socket; what came before must be forgotten or loaded now.
        await OnSubscribedAsync(stoppingToken);
        subscribed();
        logger.LogInformation("{What}s subscribed; answering from memory while the {Lease} ms lease holds", What, lease.TotalMilliseconds);

        using var session = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var lastAnswer = clock.GetTimestamp();
        var pinging = PingAsync(subscription, () => Volatile.Read(ref lastAnswer), session);
        try
        {
            while (true)
            {
                var push = await subscription.ReadAsync(session.Token);
                if (push.Channel is not null)
                {
                    OnMessage(push.Payload);
                }
                else if (long.TryParse(push.Payload, NumberStyles.None, CultureInfo.InvariantCulture, out var sentAt))
                {
                    OnConfirmed(sentAt);
                    Volatile.Write(ref lastAnswer, clock.GetTimestamp());
                }
            }
        }
        finally
        {
            await session.CancelAsync();
            await pinging;
        }
    }

    /// <summary>PINGs a few times a lease; a subscription that stops answering is dropped and made again.</summary>
    private async Task PingAsync(RespSubscription subscription, Func<long> lastAnswer, CancellationTokenSource session)
    {
        var every = lease / 5;
        try
        {
            while (!session.IsCancellationRequested)
            {
                if (clock.GetElapsedTime(lastAnswer()) > lease * 4)
                {
                    logger.LogWarning("{What} subscription stopped answering; reconnecting", What);
                    await subscription.DisposeAsync();
                    return;
                }

                await subscription.PingAsync(clock.GetTimestamp().ToString(CultureInfo.InvariantCulture), session.Token);
                await Task.Delay(every, clock, session.Token);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
            // The read loop fails on the same connection and ends the session.
            await session.CancelAsync();
        }
    }
}
