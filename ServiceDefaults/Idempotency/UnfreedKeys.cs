using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Shop.ServiceDefaults.Errors;

namespace Shop.ServiceDefaults.Idempotency;

/// <summary>
/// Keys whose failed attempt could not free them when it ended (the pool had no connection free, the database was away),
/// freed by one loop of this replica as soon as a connection can be had: together, in one statement, after 1, 2, 4 and
/// then every 8 s. One loop rather than one per key, so that a burst of failures does not answer a busy pool with a burst
/// of retries; each try waits at most 1 s for a connection, so it does not queue long behind the requests either. A key
/// whose lease has run out by then is left to it (a retry takes it over). Only the attempt that failed is deleted: never
/// a key a retry has taken over, nor one an attempt completed.
/// </summary>
internal sealed class UnfreedKeys(NpgsqlDataSource dataSource, IOptions<IdempotencyOptions> options, ILogger<UnfreedKeys> logger) : BackgroundService
{
    private static readonly TimeSpan FirstDelay = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LongestDelay = TimeSpan.FromSeconds(8);
    private static readonly TimeSpan ConnectionWait = TimeSpan.FromSeconds(1);

    private readonly Channel<(IdempotencyClaim Claim, long ClaimedAt)> _queue =
        Channel.CreateUnbounded<(IdempotencyClaim, long)>(new UnboundedChannelOptions { SingleReader = true });

    /// <summary>Frees the key of <paramref name="claim"/>, made at <paramref name="claimedAt"/> (a <see cref="Stopwatch"/> timestamp), once it can.</summary>
    public void Add(IdempotencyClaim claim, long claimedAt) => _queue.Writer.TryWrite((claim, claimedAt));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var pending = new List<(IdempotencyClaim Claim, long ClaimedAt)>();
        var lease = TimeSpan.FromSeconds(options.Value.InProgressLeaseSeconds);
        var delay = FirstDelay;
        Exception? lastFailure = null;
        try
        {
            while (true)
            {
                if (pending.Count == 0)
                {
                    pending.Add(await _queue.Reader.ReadAsync(stoppingToken));
                    delay = FirstDelay;
                }

                await Task.Delay(delay, stoppingToken);
                while (_queue.Reader.TryRead(out var more))
                {
                    pending.Add(more);
                }

                var lapsed = pending.RemoveAll(p => Stopwatch.GetElapsedTime(p.ClaimedAt) >= lease);
                if (lapsed > 0)
                {
                    logger.LogWarning(lastFailure, "{Count} Idempotency-Keys could not be freed before their lease ran out; a retry takes each over", lapsed);
                }

                if (pending.Count == 0)
                {
                    lastFailure = null;
                    continue;
                }

                try
                {
                    var freed = await DeleteAsync(pending, stoppingToken);
                    logger.LogInformation("Freed {Count} Idempotency-Keys of failed attempts, {Seconds:0.0} s after the first of them was claimed",
                        freed, Stopwatch.GetElapsedTime(pending.Min(p => p.ClaimedAt)).TotalSeconds);
                    pending.Clear();
                    lastFailure = null;
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested && (DependencyFailure.Is(ex) || ex is OperationCanceledException))
                {
                    lastFailure = ex;
                    delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, LongestDelay.Ticks));
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    // Not the database being away or busy: trying again would fail the same way. The leases free them.
                    logger.LogError(ex, "Freeing {Count} Idempotency-Keys failed; they are left to their leases", pending.Count);
                    pending.Clear();
                    lastFailure = null;
                }
            }
        }
        catch (Exception) when (stoppingToken.IsCancellationRequested)
        {
            while (_queue.Reader.TryRead(out var more))
            {
                pending.Add(more);
            }

            if (pending.Count > 0)
            {
                logger.LogWarning("Stopping with {Count} Idempotency-Keys of failed attempts not freed; their leases free them", pending.Count);
            }
        }
    }

    private async Task<int> DeleteAsync(List<(IdempotencyClaim Claim, long ClaimedAt)> pending, CancellationToken stoppingToken)
    {
        NpgsqlConnection connection;
        using (var wait = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken))
        {
            wait.CancelAfter(ConnectionWait);
            connection = await dataSource.OpenConnectionAsync(wait.Token);
        }

        await using (connection)
        {
            return await FreeAsync(connection, pending.Select(p => p.Claim).ToList(), stoppingToken);
        }
    }

    /// <summary>
    /// Deletes the claims of these attempts that are still in progress: never a key a retry has taken over, nor one an
    /// attempt completed. The one statement that frees keys, for one failed attempt or many.
    /// </summary>
    internal static async Task<int> FreeAsync(NpgsqlConnection connection, IReadOnlyCollection<IdempotencyClaim> claims, CancellationToken cancellationToken)
    {
        await using var delete = new NpgsqlCommand("""
            DELETE FROM idempotency_keys k
            USING unnest($1::text[], $2::text[], $3::uuid[]) AS f(scope, key, attempt)
            WHERE k.scope = f.scope AND k.key = f.key AND k.attempt = f.attempt AND k.status = 'InProgress'
            """, connection);
        delete.Parameters.Add(new() { Value = claims.Select(c => c.Scope).ToArray() });
        delete.Parameters.Add(new() { Value = claims.Select(c => c.Key).ToArray() });
        delete.Parameters.Add(new() { Value = claims.Select(c => c.Attempt).ToArray() });
        return await delete.ExecuteNonQueryAsync(cancellationToken);
    }
}
