using System.Collections.Concurrent;
using Npgsql;

namespace Shop.Inventory.Products;

/// <summary>
/// Settles a product's cache floor that a write raised and never committed (refused after Redis stalled, its transaction
/// lost): until then every fill of the product is refused, and every replica reads it from the database for the floor's
/// day. Under a share lock on the product's row, which no writer holds between raising its floor and committing (a
/// write locks the row before it raises the floor), the committed version is read, and a floor above it is lowered to
/// it (see <see cref="ProductCache.SettleFloorAsync"/>). A row a writer holds is left to that writer (<c>SKIP LOCKED</c>),
/// and a replica settles one product at a time once.
/// </summary>
public sealed class StaleFloors(NpgsqlDataSource dataSource, ProductCache cache, ILogger<StaleFloors> logger)
{
    private readonly ConcurrentDictionary<Guid, byte> _settling = new();

    /// <summary>True when the floor was lowered and a fill may now be kept.</summary>
    public async Task<bool> SettleAsync(Guid id, string floor, CancellationToken cancellationToken)
    {
        // Only a floor with a nonce is settled. A plain one was raised by a replica of the version before, whose writes
        // would raise the very same text again: a settling script that reached Redis late could then lower their floor.
        if (!floor.Contains(':', StringComparison.Ordinal) || !_settling.TryAdd(id, 0))
        {
            return false;
        }

        try
        {
            // The service's own role: the row is looked at whatever the caller's tenant, and nothing of it is returned.
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            // A row a write holds is skipped (no row: nothing settled), without an error in the server's log.
            await using var read = new NpgsqlCommand("SELECT version FROM products WHERE id = $1 AND deleted_at IS NULL FOR SHARE SKIP LOCKED", connection, transaction);
            read.Parameters.Add(new() { Value = id });
            var settled = await read.ExecuteScalarAsync(cancellationToken) is long committed
                && committed < ProductCache.FloorVersion(floor)
                && await cache.SettleFloorAsync(id, floor, committed);
            await transaction.CommitAsync(cancellationToken);
            if (settled)
            {
                logger.LogInformation("Product {ProductId}'s cache floor {Floor} was above its committed version, left by a write that did not commit; lowered",
                    id, floor);
            }

            return settled;
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            logger.LogWarning(ex, "Product {ProductId}'s cache floor could not be checked", id);
            return false;
        }
        finally
        {
            _settling.TryRemove(id, out _);
        }
    }
}
