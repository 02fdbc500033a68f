using System.Globalization;
using System.Net;
using StackExchange.Redis;

namespace Shop.Inventory.Products;

/// <summary>
/// Keeps this replica's <see cref="NearCache{TValue}"/> honest: applies every product invalidation published by any
/// replica, holds the lease (PINGs answered on the same subscription), and makes a writer wait one lease after
/// publishing, by when no replica that missed the invalidation can still serve from memory.
/// </summary>
/// <remarks>
/// Writers wait the whole lease rather than for acknowledgements: PUBLISH counts only the subscriptions Redis still
/// holds, so a replica whose connection Redis has dropped, but which has not noticed yet, would be counted by nobody
/// while its lease ran. Only product writes and stock adjustments (admin calls) pay this wait.
/// </remarks>
public sealed class ProductInvalidations(
    IConnectionMultiplexer redis, NearCache<NearProduct> near, string redisConnectionString, TimeProvider clock, ILogger<ProductInvalidations> logger)
    : BackgroundService
{
    public const string Channel = "inventory:product-invalidations";

    /// <summary>After a committed write (and the shared cache's update): returns once no replica can serve the product's old value from memory.</summary>
    public async Task PublishAsync(Guid productId)
    {
        if (!near.Enabled)
        {
            return;
        }

        try
        {
            await redis.GetSubscriber().PublishAsync(Channel, productId.ToString("N"));
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // Replicas whose subscription is down stop serving within the lease; ones still subscribed never saw this and
            // keep their copy until it ages out. Logged as an error, as a failed update of the shared cache is.
            logger.LogError(ex, "Product {ProductId} invalidation could not be published; replicas may serve the old value for up to {Lifetime} s",
                productId, near.EntryLifetime.TotalSeconds);
        }

        await Task.Delay(near.Lease, clock);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!near.Enabled)
        {
            return;
        }

        var options = ConfigurationOptions.Parse(redisConnectionString);
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
                logger.LogWarning(ex, "Product invalidation subscription lost; reads use the shared cache until it is back");
            }
            catch (OperationCanceledException)
            {
                return;
            }
            finally
            {
                near.Reset();
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

    private async Task RunSessionAsync(string host, int port, string? password, Action subscribed, CancellationToken stoppingToken)
    {
        await using var subscription = await RespSubscription.ConnectAsync(host, port, password, [Channel], stoppingToken);
        // Whatever was held before this subscription existed may have missed invalidations.
        near.Reset();
        subscribed();
        logger.LogInformation("Product invalidations subscribed; product reads are served from memory while the {Lease} ms lease holds",
            near.Lease.TotalMilliseconds);

        using var session = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var lastAnswer = clock.GetTimestamp();
        var pinging = PingAsync(subscription, () => Volatile.Read(ref lastAnswer), session);
        try
        {
            while (true)
            {
                var push = await subscription.ReadAsync(session.Token);
                if (push.Channel is null)
                {
                    if (long.TryParse(push.Payload, NumberStyles.None, CultureInfo.InvariantCulture, out var sentAt))
                    {
                        near.Confirmed(sentAt);
                        Volatile.Write(ref lastAnswer, clock.GetTimestamp());
                    }
                }
                else if (Guid.TryParseExact(push.Payload, "N", out var productId))
                {
                    near.Invalidate(productId);
                }
                else
                {
                    logger.LogWarning("Ignored a malformed product invalidation");
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
        var every = near.Lease / 5;
        try
        {
            while (!session.IsCancellationRequested)
            {
                if (clock.GetElapsedTime(lastAnswer()) > near.Lease * 4)
                {
                    logger.LogWarning("Product invalidation subscription stopped answering; reconnecting");
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

/// <summary>A product held in memory with its availability, which may be served until <see cref="AvailableUntil"/>.</summary>
public sealed record NearProduct(CachedProduct Product, int? Available, long AvailableUntil);
