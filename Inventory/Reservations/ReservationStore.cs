using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Shop.Inventory.Stock;
using Shop.ServiceDefaults.Messaging;

namespace Shop.Inventory.Reservations;

/// <summary>
/// Stock reservations in plain SQL, so the locking is explicit (see docs/adr/0006):
/// one item is one conditional UPDATE; several items lock their stock rows in product-id order first, so two
/// orders reserving A+B and B+A wait for each other instead of deadlocking. A reservation row is locked before
/// any stock row in every transition (confirm, release, expiry), which keeps the lock order the same everywhere.
/// </summary>
public sealed class ReservationStore(NpgsqlDataSource dataSource, IOptions<ReservationOptions> options, TimeProvider clock)
{
    /// <summary>Its wait limit is how long a reservation waits for its turn at the database: as long as for a pooled connection.</summary>
    private readonly TransactionSlots _slots = new(options.Value.MaxConcurrentTransactions, "reservations", WaitLimit(dataSource));

    private ReservationCombiner<SingleReservation>? _combiner;

    /// <summary>A single-item reservation, with its event built in the caller's context (trace, correlation).</summary>
    private sealed record SingleReservation(ReservationResponse Reservation, string Hash, DateTimeOffset Now, EventEnvelope Reserved);

    private ReservationCombiner<SingleReservation> Combiner =>
        LazyInitializer.EnsureInitialized(ref _combiner, () => new ReservationCombiner<SingleReservation>(RunSingleBatchAsync, _slots.WaitLimit));

    public async Task<ReserveOutcome> ReserveAsync(ReserveRequest request, CancellationToken cancellationToken)
    {
        var items = request.Items!.OrderBy(i => i.ProductId).ToList();
        var hash = RequestHash(items);
        var ttl = TimeSpan.FromSeconds(request.HoldSeconds ?? options.Value.DefaultTtlSeconds);
        // The answer and the event then say the expiry that a repeat reads back.
        var now = DatabaseTime.Stored(clock.GetUtcNow());
        var reservation = new ReservationResponse(Guid.CreateVersion7(now), request.OrderId, "Active", now + ttl, items);

        var outcome = items.Count == 1
            ? await Combiner.EnqueueAsync(items[0].ProductId,
                new SingleReservation(reservation, hash, now, InventoryEvents.Reserved(reservation, InventoryEvents.TenantFromStatement)), cancellationToken)
            : await InSlotAsync(connection => OrderTakenAsShortfallAsync(ReserveManyAsync(connection, reservation, hash, now, cancellationToken)), cancellationToken);
        if (outcome is ReserveOutcome.Created)
        {
            return outcome;
        }

        // Only a failure needs the order's history: a repeat of a reservation that took the last unit is still a repeat.
        // A single item that was not taken is reported without counts; what is left is read here, on the caller's
        // own connection, rather than by the batch that every other waiting request depends on.
        return await InSlotAsync(async connection =>
        {
            if (await ByOrderAsync(connection) is { } known)
            {
                return known;
            }

            if (outcome is not ReserveOutcome.Insufficient { Products.Count: 0 } || items.Count != 1)
            {
                return outcome;
            }

            // Made again and refused as the order's: a twin of this request made it in the meantime.
            var shortfall = await ShortfallAsync(connection, reservation, hash, now, cancellationToken);
            return shortfall == NotTaken && await ByOrderAsync(connection) is { } twin ? twin : shortfall;
        }, cancellationToken);

        async Task<ReserveOutcome?> ByOrderAsync(NpgsqlConnection connection) =>
            await FindByOrderAsync(connection, null, request.OrderId, cancellationToken) is not { } existing ? null
            : existing.Reservation is not { } found ? new ReserveOutcome.OrderClosed()
            : existing.Hash == hash ? new ReserveOutcome.Repeated(found.ToResponse(existing.Now))
            : new ReserveOutcome.DifferentItems(found.ToResponse(existing.Now));
    }

    /// <summary>
    /// Concurrent reservations of one product, made in one round trip and one transaction (an Npgsql batch is one
    /// implicit transaction): one WAL flush for all of them instead of one each, while the row lock is held once.
    /// Each statement is the single-item statement, so each takes its unit only if it is there. If any statement
    /// fails (the twin of an order whose first reservation had not yet committed, most likely), the whole batch rolls
    /// back and each request is made again on its own.
    /// </summary>
    private Task RunSingleBatchAsync(IReadOnlyList<ReservationCombiner<SingleReservation>.Pending> queued) =>
        InSlotAsync(async connection =>
        {
            // A request's wait in its lane and for the slot add up to the wait limit at most.
            var batch = queued.Where(pending => !Combiner.FailIfWaitedTooLong(pending)).ToList();
            if (batch.Count > 1)
            {
                // Each reservation's statement follows its own request's correlation and trace, for the stock-level event it may raise.
                await using var statements = new NpgsqlBatch(connection);
                foreach (var pending in batch)
                {
                    statements.BatchCommands.Add(InventoryEvents.ContextCommand(pending.Request.Reserved));
                    statements.BatchCommands.Add(ReserveOneCommand(pending.Request));
                }

                var made = false;
                try
                {
                    await statements.ExecuteNonQueryAsync();
                    made = true;
                }
                catch (PostgresException) when (connection.State == System.Data.ConnectionState.Open)
                {
                    // Nothing of the batch was kept: each request goes on its own below. Not when the error broke the
                    // connection (the server shutting down, say): that error is the answer for every request of the batch.
                }

                for (var i = 0; made && i < batch.Count; i++)
                {
                    batch[i].Done.TrySetResult(statements.BatchCommands[2 * i + 1].RecordsAffected == 1
                        ? new ReserveOutcome.Created(batch[i].Request.Reservation)
                        : NotTaken);
                }
            }

            // One request's error (a statement timeout, say) is its own answer; one that broke the connection is everyone's.
            await ReservationCombiner<SingleReservation>.AnswerEachAsync(batch,
                single => OrderTakenAsShortfallAsync(ReserveOneAsync(connection, single, CancellationToken.None)),
                _ => connection.State != System.Data.ConnectionState.Open);
        }, CancellationToken.None, Combiner.TimeLeft(queued));

    /// <summary>The connection string's <c>Timeout</c>, where 0 is no limit, as it is for Npgsql.</summary>
    private static TimeSpan WaitLimit(NpgsqlDataSource dataSource) =>
        new NpgsqlConnectionStringBuilder(dataSource.ConnectionString).Timeout is > 0 and var seconds ? TimeSpan.FromSeconds(seconds) : Timeout.InfiniteTimeSpan;

    /// <summary>A single item not taken; the caller finds out why (see <see cref="ReserveAsync"/>).</summary>
    private static readonly ReserveOutcome NotTaken = new ReserveOutcome.Insufficient([]);

    private Task InSlotAsync(Func<NpgsqlConnection, Task> work, CancellationToken cancellationToken, TimeSpan? slotWait = null) =>
        InSlotAsync(async connection =>
        {
            await work(connection);
            return true;
        }, cancellationToken, slotWait);

    /// <summary>
    /// Runs <paramref name="work"/> on its own connection, within the replica's bound on concurrent transactions, waiting
    /// for a slot at most <paramref name="slotWait"/> (by default, the wait limit).
    /// </summary>
    private async Task<TResult> InSlotAsync<TResult>(Func<NpgsqlConnection, Task<TResult>> work, CancellationToken cancellationToken,
        TimeSpan? slotWait = null)
    {
        using var slot = await (slotWait is { } limit ? _slots.EnterAsync(limit, cancellationToken) : _slots.EnterAsync(cancellationToken));
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await work(connection);
    }

    /// <summary>This order already has a reservation (a repeat, or a concurrent twin that won): nothing of ours was kept.</summary>
    private static async Task<ReserveOutcome> OrderTakenAsShortfallAsync(Task<ReserveOutcome> reserve)
    {
        try
        {
            return await reserve;
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation && ex.ConstraintName == "reservations_order_id_key")
        {
            return NotTaken;
        }
    }

    /// <summary>Reserved units become sold ones: quantity and reserved both drop.</summary>
    public Task<(TransitionResult Result, ReservationResponse? Reservation)> ConfirmAsync(Guid id, CancellationToken cancellationToken) =>
        TransitionAsync(id, (reservation, now) => reservation.Confirm(now), null, cancellationToken);

    /// <summary>Reserved units return to the available stock; units of a confirmed reservation go back on the shelf (a refund).</summary>
    public Task<(TransitionResult Result, ReservationResponse? Reservation)> ReleaseAsync(Guid id, CancellationToken cancellationToken) =>
        TransitionAsync(id, (reservation, now) => reservation.Release(now), "released", cancellationToken);

    /// <summary>
    /// The order was cancelled or failed: release its reservation, in the caller's transaction (the event
    /// consumer's, with its inbox row). When the reservation has not arrived yet (events and calls race), a closed
    /// marker takes its place, so the late reservation is refused and nothing stays held.
    /// </summary>
    public async Task<TransitionResult> CloseOrderAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string tenantId, Guid orderId,
        string reason, CancellationToken cancellationToken)
    {
        await using (var marker = new NpgsqlCommand("""
            INSERT INTO reservations (id, tenant_id, order_id, status, request_hash, expires_at, created_at, updated_at, release_reason, closed)
            VALUES ($1, $2, $3, 'Released', 'closed', now(), now(), now(), $4, true)
            ON CONFLICT (order_id) DO NOTHING
            """, connection, transaction))
        {
            marker.Parameters.Add(new() { Value = Guid.CreateVersion7() });
            marker.Parameters.Add(new() { Value = tenantId });
            marker.Parameters.Add(new() { Value = orderId });
            marker.Parameters.Add(new() { Value = reason });
            if (await marker.ExecuteNonQueryAsync(cancellationToken) == 1)
            {
                return TransitionResult.Done;
            }
        }

        var current = await ReadAsync(connection, transaction, "order_id = $1", orderId, forUpdate: true, cancellationToken);
        return current?.Reservation is null
            ? TransitionResult.AlreadyDone
            : (await TransitionCoreAsync(connection, transaction, current, (reservation, now) => reservation.Release(now), reason, cancellationToken)).Result;
    }

    public async Task<ReservationResponse?> GetAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await ReadAsync(connection, null, "id = $1", id, forUpdate: false, cancellationToken) is { Reservation: { } found } stored
            ? found.ToResponse(stored.Now)
            : null;
    }

    /// <summary>
    /// Expires due reservations and returns their stock, once each: rows are claimed with SKIP LOCKED, so replicas
    /// sweeping at the same time share the work instead of repeating it. Returns how many reservations expired.
    /// </summary>
    /// <remarks>
    /// In the order every transition follows: the reservations locked, then their stock rows in product-id order, and
    /// only then anything changed. A reservation changed before its stock is locked would deadlock with a repeated
    /// reservation of the same order: that one holds its stock rows and, inserting the order's id, waits for a row that
    /// is being changed under the same key (a unique index does not wait for a row that is only locked; it refuses the
    /// duplicate at once, and the repeat is answered from the stored reservation).
    /// </remarks>
    public async Task<int> ExpireDueAsync(int batchSize, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var due = new List<Guid>();
        await using (var claim = new NpgsqlCommand("""
            SELECT id FROM reservations
            WHERE status = 'Active' AND expires_at <= now()
            ORDER BY expires_at
            LIMIT $1
            FOR UPDATE SKIP LOCKED
            """, connection, transaction))
        {
            claim.Parameters.Add(new() { Value = batchSize });
            await using var reader = await claim.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                due.Add(reader.GetGuid(0));
            }
        }

        if (due.Count == 0)
        {
            await transaction.RollbackAsync(cancellationToken);
            return 0;
        }

        var returned = new List<(Guid ProductId, int Quantity)>();
        await using (var items = new NpgsqlCommand("""
            SELECT product_id, sum(quantity)::int FROM reservation_items
            WHERE reservation_id = ANY($1)
            GROUP BY product_id
            ORDER BY product_id
            """, connection, transaction))
        {
            items.Parameters.Add(new() { Value = due.ToArray() });
            await using var reader = await items.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                returned.Add((reader.GetGuid(0), reader.GetInt32(1)));
            }
        }

        await ReleaseStockAsync(connection, transaction, returned, cancellationToken);
        await using (var expire = new NpgsqlCommand(
            "UPDATE reservations SET status = 'Expired', updated_at = now() WHERE id = ANY($1)", connection, transaction))
        {
            expire.Parameters.Add(new() { Value = due.ToArray() });
            await expire.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return due.Count;
    }

    private async Task<(TransitionResult, ReservationResponse?)> TransitionAsync(Guid id, Func<Reservation, DateTimeOffset, Transition> decide, string? reason,
        CancellationToken cancellationToken)
    {
        using var slot = await _slots.EnterAsync(cancellationToken);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var current = await ReadAsync(connection, transaction, "id = $1", id, forUpdate: true, cancellationToken);
        if (current?.Reservation is null)
        {
            return (TransitionResult.NotFound, null);
        }

        var outcome = await TransitionCoreAsync(connection, transaction, current, decide, reason, cancellationToken);
        if (outcome.Result == TransitionResult.Done)
        {
            await transaction.CommitAsync(cancellationToken);
        }

        return outcome;
    }

    /// <summary>
    /// Moves a reservation whose row the transaction has locked, as the reservation decides, judged by the database's
    /// clock; the stock change is the one the transition names.
    /// </summary>
    private static async Task<(TransitionResult Result, ReservationResponse? Reservation)> TransitionCoreAsync(NpgsqlConnection connection,
        NpgsqlTransaction transaction, Stored current, Func<Reservation, DateTimeOffset, Transition> decide, string? reason,
        CancellationToken cancellationToken)
    {
        var reservation = current.Reservation!;
        var wasConfirmed = reservation.Status == ReservationStatus.Confirmed;
        var transition = decide(reservation, current.Now);
        var response = reservation.ToResponse();
        if (transition.Result != TransitionResult.Done)
        {
            return (transition.Result, response);
        }

        var setClause = transition.Change switch
        {
            StockChange.Sell => "quantity = s.quantity - i.quantity, reserved = s.reserved - i.quantity",
            StockChange.Unreserve => "reserved = s.reserved - i.quantity",
            StockChange.Restock => "quantity = s.quantity + i.quantity",
            var other => throw new InvalidOperationException($"A transition that was made changes the stock, not {other}."),
        };
        // A release that found the reservation due expired it: its event is the sweep's, written by the reservation's
        // trigger (migration 0003, reason "expired"), and it keeps no release reason, as a swept one does.
        var released = reservation.Status == ReservationStatus.Released;
        var raised = reservation.Status switch
        {
            ReservationStatus.Confirmed => InventoryEvents.Confirmed(response, current.TenantId),
            ReservationStatus.Released => InventoryEvents.Released(response, current.TenantId, reason ?? "released", wasConfirmed),
            _ => null,
        };

        // One round trip: the stock rows locked in product-id order, then the stock, the reservation and its event; the
        // stock-level event the change may raise (and an expiry's) in the event's correlation and trace.
        await using var batch = new NpgsqlBatch(connection, transaction);
        batch.BatchCommands.Add(raised is null ? InventoryEvents.ContextCommand() : InventoryEvents.ContextCommand(raised));
        var lockStock = new NpgsqlBatchCommand("SELECT product_id FROM stock WHERE product_id = ANY($1) ORDER BY product_id FOR UPDATE");
        lockStock.Parameters.Add(new() { Value = reservation.Items.Select(i => i.ProductId).Order().ToArray() });
        var update = new NpgsqlBatchCommand($"""
            UPDATE stock s SET {setClause}, version = s.version + 1, updated_at = now()
            FROM reservation_items i
            WHERE i.reservation_id = $1 AND s.product_id = i.product_id
            """);
        update.Parameters.Add(new() { Value = reservation.Id });
        var status = new NpgsqlBatchCommand("UPDATE reservations SET status = $2, release_reason = COALESCE($3, release_reason), updated_at = now() WHERE id = $1");
        status.Parameters.Add(new() { Value = reservation.Id });
        status.Parameters.Add(new() { Value = reservation.Status.ToString() });
        status.Parameters.Add(new() { Value = released ? (object)(reason ?? "released") : DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        batch.BatchCommands.Add(lockStock);
        batch.BatchCommands.Add(update);
        batch.BatchCommands.Add(status);
        if (raised is not null)
        {
            batch.BatchCommands.Add(OutboxSql.InsertCommand(InventoryEvents.Exchange, raised));
        }

        await batch.ExecuteNonQueryAsync(cancellationToken);
        return (TransitionResult.Done, response);
    }

    /// <summary>
    /// The hot path: one statement, atomic on its own, one round trip (after the trace's settings, in the same implicit
    /// transaction). The conditional update takes the unit only if
    /// it is there (its WHERE is <see cref="StockLevel.CanReserve"/>), and the reservation rows are written only if it did.
    /// An order that already has a reservation takes nothing: a client's retry is answered from the stored reservation
    /// afterwards instead of failing its combined batch, and every other request in it, on the unique order id.
    /// </summary>
    private static async Task<ReserveOutcome> ReserveOneAsync(NpgsqlConnection connection, SingleReservation single, CancellationToken cancellationToken)
    {
        await using var reserve = new NpgsqlBatch(connection) { BatchCommands = { InventoryEvents.ContextCommand(single.Reserved), ReserveOneCommand(single) } };
        await reserve.ExecuteNonQueryAsync(cancellationToken);
        return reserve.BatchCommands[1].RecordsAffected == 1 ? new ReserveOutcome.Created(single.Reservation) : NotTaken;
    }

    private static NpgsqlBatchCommand ReserveOneCommand(SingleReservation single)
    {
        var reserve = new NpgsqlBatchCommand(ReserveOneSql);
        AddReserveOneParameters(reserve.Parameters, single);
        return reserve;
    }

    private const string ReserveOneSql = """
        WITH taken AS (
            UPDATE stock SET reserved = reserved + $2, version = version + 1, updated_at = now()
            WHERE product_id = $1 AND quantity - reserved >= $2
              AND EXISTS (SELECT 1 FROM products p WHERE p.id = stock.product_id AND p.deleted_at IS NULL AND p.active)
              AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.order_id = $4)
            RETURNING tenant_id),
        reservation AS (
            INSERT INTO reservations (id, tenant_id, order_id, status, request_hash, expires_at, created_at, updated_at)
            SELECT $3, tenant_id, $4, 'Active', $5, $6, $7, $7 FROM taken
            RETURNING id),
        announced AS (
            INSERT INTO outbox_messages (event_id, exchange, routing_key, payload, created_at, next_attempt_at)
            SELECT $8, $9, $10, jsonb_set($11::jsonb, '{tenantId}', to_jsonb(tenant_id)), $7, $7 FROM taken)
        INSERT INTO reservation_items (reservation_id, product_id, quantity)
        SELECT id, $1, $2 FROM reservation
        """;

    private static void AddReserveOneParameters(NpgsqlParameterCollection parameters, SingleReservation single)
    {
        var (reservation, hash, now, reserved) = single;
        var item = reservation.Items[0];
        parameters.Add(new() { Value = item.ProductId });
        parameters.Add(new() { Value = item.Quantity });
        parameters.Add(new() { Value = reservation.Id });
        parameters.Add(new() { Value = reservation.OrderId });
        parameters.Add(new() { Value = hash });
        parameters.Add(new() { Value = reservation.ExpiresAt, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        parameters.Add(new() { Value = now, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        // The event rides in the same statement: written if and only if the unit was taken.
        parameters.Add(new() { Value = reserved.EventId });
        parameters.Add(new() { Value = InventoryEvents.Exchange });
        parameters.Add(new() { Value = reserved.EventType });
        parameters.Add(new() { Value = OutboxSql.Payload(reserved), NpgsqlDbType = NpgsqlDbType.Jsonb });
    }

    /// <summary>
    /// Why one item was not taken: a product not for sale (unknown, deleted or inactive), or how many units are left. The
    /// read takes no lock, so units released or restocked since the reservation's own statement can show here as enough;
    /// a 409 would then name as short a product it shows enough of. So the reservation is made once more, the way several
    /// items are, on the locked row: it takes the units, or says how many are left while it holds the lock.
    /// </summary>
    private static async Task<ReserveOutcome> ShortfallAsync(NpgsqlConnection connection, ReservationResponse reservation, string hash,
        DateTimeOffset now, CancellationToken cancellationToken)
    {
        var item = reservation.Items[0];
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
        {
            var stock = await StockAsync(connection, transaction, [item.ProductId], lockRows: false, cancellationToken);
            if (stock.Count == 0)
            {
                return new ReserveOutcome.UnknownProducts([item.ProductId]);
            }

            if (!stock[0].CanReserve(item.Quantity))
            {
                return new ReserveOutcome.Insufficient([new ShortProduct(item.ProductId, item.Quantity, stock[0].Available)]);
            }
        }

        return await OrderTakenAsShortfallAsync(ReserveManyAsync(connection, reservation, hash, now, cancellationToken));
    }

    /// <summary>Several items: lock their stock rows in product-id order, check them all, then take them all or none.</summary>
    private static async Task<ReserveOutcome> ReserveManyAsync(NpgsqlConnection connection, ReservationResponse reservation, string hash,
        DateTimeOffset now, CancellationToken cancellationToken)
    {
        var items = reservation.Items;
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var settings = new NpgsqlBatch(connection, transaction)
        {
            BatchCommands = { new NpgsqlBatchCommand("SET LOCAL statement_timeout = '5s'"), InventoryEvents.ContextCommand() },
        })
        {
            await settings.ExecuteNonQueryAsync(cancellationToken);
        }
        var taken = await TakeManyAsync(connection, transaction, items, cancellationToken);
        if (taken.Outcome is { } failed)
        {
            await transaction.RollbackAsync(cancellationToken);
            return failed;
        }

        if (taken.Tenants.Distinct().Count() != 1)
        {
            await transaction.RollbackAsync(cancellationToken);
            return new ReserveOutcome.MixedTenants();
        }

        await InsertAsync(connection, transaction, reservation, taken.Tenants[0], hash, now, cancellationToken);
        await OutboxSql.InsertAsync(connection, transaction, InventoryEvents.Exchange, InventoryEvents.Reserved(reservation, taken.Tenants[0]), cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return new ReserveOutcome.Created(reservation);
    }

    /// <summary>The stock rows are locked and judged here, each item by its <see cref="StockLevel"/>, and written back as it decided.</summary>
    private static async Task<(ReserveOutcome? Outcome, List<string> Tenants)> TakeManyAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<ReservationItem> items, CancellationToken cancellationToken)
    {
        var stock = (await StockAsync(connection, transaction, items.Select(i => i.ProductId).ToArray(), lockRows: true, cancellationToken))
            .ToDictionary(level => level.ProductId);
        var unknown = items.Select(i => i.ProductId).Where(id => !stock.ContainsKey(id)).ToList();
        if (unknown.Count > 0)
        {
            return (new ReserveOutcome.UnknownProducts(unknown), []);
        }

        var shortfalls = items.Where(i => !stock[i.ProductId].CanReserve(i.Quantity))
            .Select(i => new ShortProduct(i.ProductId, i.Quantity, stock[i.ProductId].Available)).ToList();
        if (shortfalls.Count > 0)
        {
            return (new ReserveOutcome.Insufficient(shortfalls), []);
        }

        var taken = items.Select(i => stock[i.ProductId]).ToList();
        foreach (var item in items)
        {
            stock[item.ProductId].Reserve(item.Quantity);
        }

        await using var update = new NpgsqlCommand("""
            UPDATE stock s SET reserved = w.reserved, version = w.version, updated_at = now()
            FROM unnest($1::uuid[], $2::int[], $3::bigint[]) AS w(product_id, reserved, version)
            WHERE s.product_id = w.product_id
            """, connection, transaction);
        update.Parameters.Add(new() { Value = taken.Select(level => level.ProductId).ToArray() });
        update.Parameters.Add(new() { Value = taken.Select(level => level.Reserved).ToArray() });
        update.Parameters.Add(new() { Value = taken.Select(level => level.Version).ToArray() });
        await update.ExecuteNonQueryAsync(cancellationToken);
        return (null, taken.Select(level => level.TenantId).ToList());
    }

    /// <summary>The stock of products for sale (active, not deleted), in product-id order; locked, in that order, when asked.</summary>
    private static async Task<List<StockLevel>> StockAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, Guid[] productIds, bool lockRows, CancellationToken cancellationToken)
    {
        await using var select = new NpgsqlCommand($"""
            SELECT {StockRows.ColumnsOfS}
            FROM stock s JOIN products p ON p.id = s.product_id
            WHERE s.product_id = ANY($1) AND p.deleted_at IS NULL AND p.active
            ORDER BY s.product_id
            {(lockRows ? "FOR UPDATE OF s" : "")}
            """, connection, transaction);
        select.Parameters.Add(new() { Value = productIds });
        var rows = new List<StockLevel>();
        await using var reader = await select.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(StockRows.Read(reader));
        }

        return rows;
    }

    private static async Task ReleaseStockAsync(NpgsqlConnection connection, NpgsqlTransaction transaction,
        List<(Guid ProductId, int Quantity)> items, CancellationToken cancellationToken)
    {
        await LockStockAsync(connection, transaction, items.Select(i => i.ProductId), cancellationToken);
        await using var update = new NpgsqlCommand("""
            UPDATE stock s SET reserved = s.reserved - w.quantity, version = s.version + 1, updated_at = now()
            FROM unnest($1::uuid[], $2::int[]) AS w(product_id, quantity)
            WHERE s.product_id = w.product_id
            """, connection, transaction);
        update.Parameters.Add(new() { Value = items.Select(i => i.ProductId).ToArray() });
        update.Parameters.Add(new() { Value = items.Select(i => i.Quantity).ToArray() });
        await update.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Locks stock rows in product-id order: the one lock order every transaction here follows.</summary>
    private static async Task LockStockAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IEnumerable<Guid> productIds,
        CancellationToken cancellationToken)
    {
        await using var select = new NpgsqlCommand(
            "SELECT product_id FROM stock WHERE product_id = ANY($1) ORDER BY product_id FOR UPDATE", connection, transaction);
        select.Parameters.Add(new() { Value = productIds.Order().ToArray() });
        await using var reader = await select.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
        }
    }

    private static async Task InsertAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, ReservationResponse reservation,
        string tenantId, string hash, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var insert = new NpgsqlCommand("""
            WITH r AS (
                INSERT INTO reservations (id, tenant_id, order_id, status, request_hash, expires_at, created_at, updated_at)
                VALUES ($1, $2, $3, 'Active', $4, $5, $6, $6))
            INSERT INTO reservation_items (reservation_id, product_id, quantity)
            SELECT $1, product_id, quantity FROM unnest($7::uuid[], $8::int[]) AS u(product_id, quantity)
            """, connection, transaction);
        insert.Parameters.Add(new() { Value = reservation.Id });
        insert.Parameters.Add(new() { Value = tenantId });
        insert.Parameters.Add(new() { Value = reservation.OrderId });
        insert.Parameters.Add(new() { Value = hash });
        insert.Parameters.Add(new() { Value = reservation.ExpiresAt, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        insert.Parameters.Add(new() { Value = now, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        insert.Parameters.Add(new() { Value = reservation.Items.Select(i => i.ProductId).ToArray() });
        insert.Parameters.Add(new() { Value = reservation.Items.Select(i => i.Quantity).ToArray() });
        await insert.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>A stored reservation (null for the marker of a closed order that never reserved) and the database's clock when it was read.</summary>
    private sealed record Stored(Reservation? Reservation, string Hash, string TenantId, DateTimeOffset Now);

    private static Task<Stored?> FindByOrderAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid orderId, CancellationToken cancellationToken) =>
        ReadAsync(connection, transaction, "order_id = $1", orderId, forUpdate: false, cancellationToken);

    private static async Task<Stored?> ReadAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string where, Guid key,
        bool forUpdate, CancellationToken cancellationToken)
    {
        // FOR UPDATE cannot be combined with GROUP BY in one query level: the row is locked in a CTE and read from it.
        // The clock is read after the lock is had: now() is when the transaction began, before any wait for the lock.
        await using var select = new NpgsqlCommand($"""
            WITH r AS (SELECT * FROM reservations WHERE {where}{(forUpdate ? " FOR UPDATE" : "")})
            SELECT r.id, r.order_id, r.status, r.expires_at, r.request_hash,
                   array_remove(array_agg(i.product_id ORDER BY i.product_id), NULL),
                   array_remove(array_agg(i.quantity ORDER BY i.product_id), NULL),
                   r.closed, r.tenant_id, clock_timestamp()
            FROM r LEFT JOIN reservation_items i ON i.reservation_id = r.id
            GROUP BY r.id, r.order_id, r.status, r.expires_at, r.request_hash, r.closed, r.tenant_id
            """, connection, transaction);
        select.Parameters.Add(new() { Value = key });
        await using var reader = await select.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        var products = reader.GetFieldValue<Guid[]>(5);
        var quantities = reader.GetFieldValue<int[]>(6);
        var reservation = reader.GetBoolean(7) ? null
            : new Reservation(reader.GetGuid(0), reader.GetGuid(1), Enum.Parse<ReservationStatus>(reader.GetString(2)),
                reader.GetFieldValue<DateTimeOffset>(3), products.Zip(quantities, (p, q) => new ReservationItem(p, q)).ToList());
        return new Stored(reservation, reader.GetString(4), reader.GetString(8), reader.GetFieldValue<DateTimeOffset>(9));
    }

    private static string RequestHash(IEnumerable<ReservationItem> orderedItems) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join(';', orderedItems.Select(i => $"{i.ProductId:N}:{i.Quantity}")))));
}
