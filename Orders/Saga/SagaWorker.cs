using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Security;

namespace Shop.Orders.Saga;

/// <summary>Wakes this replica's saga worker when work was just placed here, instead of waiting for its next poll.</summary>
public sealed class SagaSignal
{
    private readonly SemaphoreSlim _signal = new(0, 1);

    public void Notify()
    {
        // One pending wake-up covers every new saga; checking first keeps the common case free of exceptions.
        if (_signal.CurrentCount > 0)
        {
            return;
        }

        try
        {
            _signal.Release();
        }
        catch (SemaphoreFullException)
        {
            // Another request signalled in between.
        }
    }

    public Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) => _signal.WaitAsync(timeout, cancellationToken);
}

/// <summary>
/// Claims due sagas across tenants with <c>FOR UPDATE SKIP LOCKED</c> and a lease, and drives each one as its
/// tenant. Every replica runs one; a lease and the fenced commit keep two replicas off the same saga, and a
/// replica that dies leaves its sagas to be claimed again once their leases run out.
/// </summary>
public sealed class SagaWorker(IServiceProvider services, IServiceScopeFactory scopes, SagaSignal signal, IOptions<SagaOptions> options, ILogger<SagaWorker> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await services.WaitForMigrationsAsync<OrdersDbContext>(stoppingToken);
        var settings = options.Value;
        using var slots = new SemaphoreSlim(settings.MaxConcurrentSagas, settings.MaxConcurrentSagas);
        var running = new List<Task>();
        while (!stoppingToken.IsCancellationRequested)
        {
            var claimed = 0;
            var free = slots.CurrentCount;
            try
            {
                if (free > 0)
                {
                    var claims = await ClaimAsync(free, settings.LeaseSeconds, stoppingToken);
                    claimed = claims.Count;
                    foreach (var claim in claims)
                    {
                        await slots.WaitAsync(stoppingToken);
                        running.Add(RunAsync(claim, slots, stoppingToken));
                    }
                }

                running.RemoveAll(t => t.IsCompleted);
                if (claimed == 0 || claimed < free)
                {
                    await signal.WaitAsync(TimeSpan.FromMilliseconds(settings.PollIntervalMilliseconds), stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Claiming sagas failed; trying again shortly");
                await PauseAsync(stoppingToken);
            }
        }

        await Task.WhenAll(running);
    }

    private static async Task PauseAsync(CancellationToken stoppingToken)
    {
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
        }
        catch (OperationCanceledException)
        {
            // Stopping; the loop ends.
        }
    }

    private async Task<List<SagaClaim>> ClaimAsync(int count, int leaseSeconds, CancellationToken cancellationToken)
    {
        TenantContext.Current = null;
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<OrdersDbContext>();
        return await db.Database.SqlQuery<SagaClaim>($"""
            UPDATE order_sagas s
            SET lease_token = gen_random_uuid(), lease_until = now() + make_interval(secs => {leaseSeconds}), updated_at = now()
            FROM (SELECT order_id FROM order_sagas
                  WHERE step <> 'Done' AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now())
                  ORDER BY next_attempt_at
                  LIMIT {count}
                  FOR UPDATE SKIP LOCKED) due
            WHERE s.order_id = due.order_id
            RETURNING s.order_id AS "OrderId", s.tenant_id AS "TenantId", s.step AS "Step", s.attempts AS "Attempts", s.lease_token AS "LeaseToken"
            """).ToListAsync(cancellationToken);
    }

    private async Task RunAsync(SagaClaim claim, SemaphoreSlim slots, CancellationToken stoppingToken)
    {
        // Off the claiming loop, and as the order's tenant: row-level security applies to everything it reads.
        await Task.Yield();
        TenantContext.Current = claim.TenantId;
        using var leaseLost = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        using var renewing = new CancellationTokenSource();
        var renewal = RenewLeaseAsync(claim, leaseLost, renewing.Token);
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<OrderSaga>().RunAsync(claim, leaseLost.Token);
        }
        catch (Exception ex) when (ex is SagaLeaseLostException || (ex is OperationCanceledException && leaseLost.IsCancellationRequested && !stoppingToken.IsCancellationRequested))
        {
            logger.LogWarning("The lease on the saga of order {OrderId} was lost; another replica carries it on", claim.OrderId);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            await GiveUpAsync(claim, null, TimeSpan.Zero);
        }
        catch (SagaStepFailedException ex)
        {
            await GiveUpAsync(claim, ex.InnerException!.Message, TimeSpan.FromMilliseconds(options.Value.RetryBaseDelayMilliseconds));
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Saga of order {OrderId} failed; it will be tried again", claim.OrderId);
            await GiveUpAsync(claim, ex.Message, TimeSpan.FromMilliseconds(options.Value.RetryBaseDelayMilliseconds));
        }
        finally
        {
            await renewing.CancelAsync();
            await renewal;
            slots.Release();
        }
    }

    /// <summary>
    /// Keeps the lease while a step runs longer than a third of it (a slow provider, HTTP retries). If the lease
    /// is gone (this replica stalled and another took over), the step is cancelled: its commit would be refused anyway.
    /// </summary>
    private async Task RenewLeaseAsync(SagaClaim claim, CancellationTokenSource leaseLost, CancellationToken done)
    {
        var leaseSeconds = options.Value.LeaseSeconds;
        while (!done.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(leaseSeconds / 3.0), done);
                await using var scope = scopes.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<OrdersDbContext>();
                var renewed = await db.Database.ExecuteSqlInterpolatedAsync(
                    $"UPDATE order_sagas SET lease_until = now() + make_interval(secs => {leaseSeconds}) WHERE order_id = {claim.OrderId} AND lease_token = {claim.LeaseToken}",
                    done);
                if (renewed == 0 && !done.IsCancellationRequested)
                {
                    await leaseLost.CancelAsync();
                    return;
                }
            }
            catch (OperationCanceledException) when (done.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Renewing the lease on the saga of order {OrderId} failed", claim.OrderId);
            }
        }
    }

    /// <summary>Hands the saga back (on shutdown at once, after an error a little later) instead of waiting for the lease to run out.</summary>
    private async Task GiveUpAsync(SagaClaim claim, string? error, TimeSpan delay)
    {
        try
        {
            TenantContext.Current = null;
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<OrdersDbContext>();
            var nextAttemptAt = DateTimeOffset.UtcNow + delay;
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(3));
            await db.Database.ExecuteSqlInterpolatedAsync($"""
                UPDATE order_sagas SET lease_token = NULL, lease_until = NULL, next_attempt_at = {nextAttemptAt},
                    last_error = COALESCE({error}, last_error), updated_at = now()
                WHERE order_id = {claim.OrderId} AND lease_token = {claim.LeaseToken}
                """, timeout.Token);
        }
        catch (Exception ex)
        {
            logger.LogWarning(ex, "Could not hand back the saga of order {OrderId}; its lease will run out", claim.OrderId);
        }
    }
}
