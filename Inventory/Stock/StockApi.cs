using System.Security.Claims;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using Shop.Inventory.Products;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Idempotency;
using Shop.ServiceDefaults.Paging;
using Shop.ServiceDefaults.Security;
using StackExchange.Redis;

namespace Shop.Inventory.Stock;

public sealed record StockResponse(Guid ProductId, int Quantity, int Reserved, int Available, long Version);

public sealed record AdjustmentRequest(int? Delta, string? Reason);

/// <summary>
/// One recorded adjustment, with the quantity it left and the stock version it made (null for those recorded before
/// they were kept).
/// </summary>
public sealed record AdjustmentResponse(Guid Id, Guid ProductId, int Delta, string Reason, string Actor, int? QuantityAfter, long? Version,
    DateTimeOffset CreatedAt);

public sealed record StockStats(int Products, long Quantity, long Reserved, long Available, int OutOfStock, int ActiveReservations, DateTimeOffset ComputedAt);

public static class StockApi
{
    private static readonly TimeSpan StatsTtl = TimeSpan.FromSeconds(5);

    /// <summary>The stats are computed from the database when Redis does not answer within this (it may stall without failing).</summary>
    private static readonly TimeSpan StatsRedisBudget = TimeSpan.FromMilliseconds(500);

    public static IEndpointRouteBuilder MapStockApi(this IEndpointRouteBuilder app)
    {
        var inventory = app.MapGroup("/v1/inventory").WithTags("Stock");
        inventory.MapGet("/{productId:guid}", GetStock).RequireAuthorization(ShopPolicies.User);
        inventory.MapPost("/{productId:guid}/adjustments", Adjust).RequireAuthorization(ShopPolicies.Admin).AcceptIdempotencyKey()
            .WithSummary("Restock or write off, with a reason; send an Idempotency-Key to make a retry safe.");
        inventory.MapGet("/{productId:guid}/adjustments", ListAdjustments).RequireAuthorization(ShopPolicies.Admin)
            .WithSummary("The product's recorded adjustments, newest first.");
        inventory.MapGet("/low-stock", LowStock).RequireAuthorization(ShopPolicies.Admin)
            .WithSummary("Stock at or under the threshold, lowest first; a Link header names the next page.");
        inventory.MapGet("/stats", Stats).RequireAuthorization(ShopPolicies.Admin)
            .WithSummary("The tenant's stock totals, computed at most every 5 seconds.");
        return app;
    }

    public static async Task<Results<Ok<StockResponse>, NotFound>> GetStock(Guid productId, ClaimsPrincipal user, InventoryDbContext db, CancellationToken cancellationToken)
    {
        var tenant = user.TenantId() ?? "";
        await using var scope = await db.Database.BeginTenantTransactionAsync(tenant, cancellationToken);
        var stock = await db.Stock.AsNoTracking().FirstOrDefaultAsync(s => s.ProductId == productId && s.TenantId == tenant
            && db.Products.Any(p => p.Id == s.ProductId && p.DeletedAt == null), cancellationToken);
        return stock is null ? TypedResults.NotFound() : TypedResults.Ok(From(stock));
    }

    /// <summary>
    /// Restock (positive) or write-off (negative), recorded with its reason, the quantity it left and the stock version it
    /// made; never below what is reserved, never above <see cref="StockLevel.MaxQuantity"/>. With an Idempotency-Key, the response a
    /// retry gets commits with the change, so a retry never applies it twice.
    /// </summary>
    public static async Task<Results<Ok<StockResponse>, NotFound, ValidationProblem, ProblemHttpResult>> Adjust(
        Guid productId, AdjustmentRequest request, ClaimsPrincipal admin, NpgsqlDataSource dataSource, ProductCache cache, HttpContext context,
        CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        if (request.Delta is not (>= -1_000_000 and <= 1_000_000 and not 0))
        {
            errors["delta"] = ["A non-zero change of at most 1000000 units either way."];
        }

        if (request.Reason is not { Length: > 0 and <= 500 } || !ProductText.HasVisibleCharacter(request.Reason))
        {
            errors["reason"] = ["Between 1 and 500 characters."];
        }
        else if (!ProductText.IsCleanText(request.Reason))
        {
            errors["reason"] = ["No control characters other than line breaks and tabs, and no direction overrides."];
        }

        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        var tenant = admin.TenantId()!;
        var delta = request.Delta!.Value;
        StockResponse response;
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await TenantScope.EnterAsync(connection, transaction, tenant, cancellationToken);
            StockLevel stock;
            await using (var select = new NpgsqlCommand($"""
                SELECT {StockRows.Columns} FROM stock
                WHERE product_id = $1 AND tenant_id = $2
                  AND EXISTS (SELECT 1 FROM products p WHERE p.id = stock.product_id AND p.deleted_at IS NULL)
                FOR UPDATE
                """, connection, transaction))
            {
                select.Parameters.Add(new() { Value = productId });
                select.Parameters.Add(new() { Value = tenant });
                await using var reader = await select.ExecuteReaderAsync(cancellationToken);
                if (!await reader.ReadAsync(cancellationToken))
                {
                    return TypedResults.NotFound();
                }

                stock = StockRows.Read(reader);
            }

            var before = stock.Quantity;
            switch (stock.Adjust(delta))
            {
                case AdjustmentOutcome.WouldExceedLimit:
                    return TypedResults.Problem(statusCode: 409, title: "Stock limit reached.",
                        detail: $"A product holds at most {StockLevel.MaxQuantity} units; this one has {before}.");
                case AdjustmentOutcome.WouldTakeReservedUnits:
                    return TypedResults.Problem(statusCode: 409, title: "Not enough unreserved stock.",
                        detail: $"Only {stock.Available} units are unreserved; a write-off cannot take reserved units.");
            }

            // The row is locked: the write is what the stock decided, and the adjustment records it, in one round trip.
            await using (var write = new NpgsqlBatch(connection, transaction))
            {
                write.BatchCommands.Add(new NpgsqlBatchCommand("UPDATE stock SET quantity = $2, version = $3, updated_at = now() WHERE product_id = $1")
                {
                    Parameters = { new() { Value = productId }, new() { Value = stock.Quantity }, new() { Value = stock.Version } },
                });
                write.BatchCommands.Add(new NpgsqlBatchCommand("""
                    INSERT INTO stock_adjustments (id, tenant_id, product_id, delta, reason, actor, quantity_after, stock_version)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                    """)
                {
                    Parameters =
                    {
                        new() { Value = Guid.CreateVersion7() }, new() { Value = tenant }, new() { Value = productId }, new() { Value = delta },
                        new() { Value = request.Reason!.Trim() }, new() { Value = admin.UserId()! }, new() { Value = stock.Quantity },
                        new() { Value = stock.Version },
                    },
                });
                await write.ExecuteNonQueryAsync(cancellationToken);
            }

            response = From(stock);
            if (context.IdempotencyClaimIfAny() is { } claim)
            {
                await claim.CompleteAsync(connection, transaction, StatusCodes.Status200OK, null, response, cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        // The connection is back in the pool before the cache's invalidation waits out its lease.
        await cache.AvailabilityChangedAsync(productId, response.Version);
        return TypedResults.Ok(response);
    }

    /// <summary>
    /// The audit trail of a product's stock: every adjustment with who made it, why, and the quantity it left, newest
    /// first. A deleted product keeps its history; another tenant's product is 404. Like the product list, a page is
    /// numbered (an offset) or follows a cursor: the history grows at its head, so a numbered page repeats the rows that
    /// new adjustments pushed down to it, and a cursor page starts after the last row shown, whatever was added since.
    /// </summary>
    public static async Task<Results<Ok<PagedResponse<AdjustmentResponse>>, NotFound, ValidationProblem>> ListAdjustments(
        Guid productId, ClaimsPrincipal admin, NpgsqlDataSource dataSource, HttpContext context, int? page = null, int pageSize = 20, string? after = null,
        CancellationToken cancellationToken = default)
    {
        var errors = PageRequest.Errors(page ?? 1, pageSize);
        var from = after is null ? null : AdjustmentCursor.Parse(after);
        if (after is not null && (from is null || page is not null))
        {
            errors["after"] = [page is not null ? "Either page or after, not both." : "Not a cursor this list gave out: follow the Link header's next page."];
        }

        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        var tenant = admin.TenantId()!;
        // One snapshot for the count, the page and the product's existence: the statements of one batch share a
        // transaction, but under read committed each still had its own snapshot, and an adjustment that committed between
        // them made the total disagree with the page.
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var snapshot = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken);
        await using var batch = new NpgsqlBatch(connection, snapshot);
        batch.BatchCommands.Add(TenantScope.Command(tenant));
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT count(*) FROM stock_adjustments WHERE product_id = $1 AND tenant_id = $2")
        {
            Parameters = { new() { Value = productId }, new() { Value = tenant } },
        });
        // After the cursor in the history's order: versions descending, then the rows recorded before versions were
        // (NULLS LAST), each group by time and id descending. One more row than the page, to know whether another follows.
        var rows = from switch
        {
            null => new NpgsqlBatchCommand($"""
                SELECT {AdjustmentColumns} FROM stock_adjustments
                WHERE product_id = $1 AND tenant_id = $2
                ORDER BY stock_version DESC NULLS LAST, created_at DESC, id DESC LIMIT $3 OFFSET $4
                """)
            {
                Parameters = { new() { Value = productId }, new() { Value = tenant }, new() { Value = pageSize + 1 }, new() { Value = ((page ?? 1) - 1) * pageSize } },
            },
            { StockVersion: { } version } => new NpgsqlBatchCommand($"""
                SELECT {AdjustmentColumns} FROM stock_adjustments
                WHERE product_id = $1 AND tenant_id = $2 AND ((stock_version, created_at, id) < ($4, $5, $6) OR stock_version IS NULL)
                ORDER BY stock_version DESC NULLS LAST, created_at DESC, id DESC LIMIT $3
                """)
            {
                Parameters =
                {
                    new() { Value = productId }, new() { Value = tenant }, new() { Value = pageSize + 1 },
                    new() { Value = version }, new() { Value = from.Value.CreatedAt }, new() { Value = from.Value.Id },
                },
            },
            _ => new NpgsqlBatchCommand($"""
                SELECT {AdjustmentColumns} FROM stock_adjustments
                WHERE product_id = $1 AND tenant_id = $2 AND stock_version IS NULL AND (created_at, id) < ($4, $5)
                ORDER BY created_at DESC, id DESC LIMIT $3
                """)
            {
                Parameters =
                {
                    new() { Value = productId }, new() { Value = tenant }, new() { Value = pageSize + 1 },
                    new() { Value = from.Value.CreatedAt }, new() { Value = from.Value.Id },
                },
            },
        };
        batch.BatchCommands.Add(rows);
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT EXISTS (SELECT 1 FROM stock WHERE product_id = $1 AND tenant_id = $2)")
        {
            Parameters = { new() { Value = productId }, new() { Value = tenant } },
        });
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        await reader.NextResultAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        var total = reader.GetInt64(0);
        await reader.NextResultAsync(cancellationToken);
        var items = new List<AdjustmentResponse>();
        while (await reader.ReadAsync(cancellationToken))
        {
            items.Add(new AdjustmentResponse(reader.GetGuid(0), productId, reader.GetInt32(1), reader.GetString(2), reader.GetString(3),
                reader.IsDBNull(4) ? null : reader.GetInt32(4), reader.IsDBNull(5) ? null : reader.GetInt64(5), reader.GetFieldValue<DateTimeOffset>(6)));
        }

        await reader.NextResultAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        if (!reader.GetBoolean(0))
        {
            return TypedResults.NotFound();
        }

        if (items.Count > pageSize)
        {
            items.RemoveAt(pageSize);
            var last = items[^1];
            context.Response.Headers.Link = PageCursor.NextLink(context.Request, AdjustmentCursor.Format(last.Version, last.CreatedAt, last.Id));
        }

        return TypedResults.Ok(new PagedResponse<AdjustmentResponse>(items, from is null ? page ?? 1 : null, pageSize, (int)total));
    }

    private const string AdjustmentColumns = "id, delta, reason, actor, quantity_after, stock_version, created_at";

    /// <summary>The most stock rows one low-stock page holds, and the default.</summary>
    public const int MaxLowStockPage = 500;

    /// <summary>
    /// Stock at or under the threshold, lowest first (then by product id), a page at a time. When more follow, the
    /// <c>Link</c> header (RFC 8288) names the next page, <c>rel="next"</c>, by a cursor after the page's last row: a
    /// row's place is its availability, which reservations change, so the cursor pages by place, not by count.
    /// </summary>
    public static async Task<Results<Ok<List<StockResponse>>, ValidationProblem>> LowStock(ClaimsPrincipal admin, NpgsqlDataSource dataSource,
        HttpContext context, int threshold = 10, int limit = MaxLowStockPage, string? after = null, CancellationToken cancellationToken = default)
    {
        var errors = new Dictionary<string, string[]>();
        if (threshold is < 0 or > 1_000_000)
        {
            errors["threshold"] = ["Between 0 and 1000000."];
        }

        if (limit is < 1 or > MaxLowStockPage)
        {
            errors["limit"] = [$"Between 1 and {MaxLowStockPage}."];
        }

        // Before every row: availability is never negative.
        var from = after is null ? (Available: -1, ProductId: Guid.Empty) : LowStockCursor.Parse(after);
        if (from is null)
        {
            errors["after"] = ["Not a cursor this list gave out: follow the Link header's next page."];
        }

        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        var tenant = admin.TenantId()!;
        await using var batch = dataSource.CreateBatch();
        batch.BatchCommands.Add(TenantScope.Command(tenant));
        batch.BatchCommands.Add(new NpgsqlBatchCommand($"""
            SELECT {StockRows.ColumnsOfS} FROM stock s
            WHERE s.tenant_id = $1 AND s.quantity - s.reserved <= $2 AND (s.quantity - s.reserved, s.product_id) > ($3, $4)
              AND EXISTS (SELECT 1 FROM products p WHERE p.id = s.product_id AND p.deleted_at IS NULL)
            ORDER BY s.quantity - s.reserved, s.product_id
            LIMIT $5
            """)
        {
            Parameters = { new() { Value = tenant }, new() { Value = threshold }, new() { Value = from!.Value.Available }, new() { Value = from.Value.ProductId }, new() { Value = limit + 1 } },
        });
        var rows = new List<StockLevel>();
        await using (var reader = await batch.ExecuteReaderAsync(cancellationToken))
        {
            await reader.NextResultAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                rows.Add(StockRows.Read(reader));
            }
        }

        if (rows.Count > limit)
        {
            rows.RemoveAt(limit);
            context.Response.Headers.Link = PageCursor.NextLink(context.Request, LowStockCursor.Format(rows[^1].Available, rows[^1].ProductId));
        }

        return TypedResults.Ok(rows.Select(From).ToList());
    }

    /// <summary>Tenant-wide totals, cached for a few seconds in Redis: dashboards poll this, and exactness is not needed here.</summary>
    public static async Task<Ok<StockStats>> Stats(ClaimsPrincipal user, InventoryDbContext db, IConnectionMultiplexer redis, TimeProvider clock,
        ILogger<StockStats> logger, CancellationToken cancellationToken)
    {
        var tenant = user.TenantId()!;
        var key = $"stock-stats:{tenant}";
        try
        {
            if ((string?)await redis.GetDatabase().StringGetAsync(key).WithinAsync(StatsRedisBudget, clock, cancellationToken) is { } cached)
            {
                return TypedResults.Ok(JsonSerializer.Deserialize<StockStats>(cached, JsonSerializerOptions.Web)!);
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Stats cache unavailable; computing");
        }

        StockStats stats;
        // The transaction ends before the stats go to Redis: a Redis that stalls must not hold it (and its connection) open.
        // One snapshot for both statements: a reservation committed between them was counted as active but not as reserved.
        await using (var scope = await db.Database.BeginTenantTransactionAsync(tenant, System.Data.IsolationLevel.RepeatableRead, cancellationToken))
        {
            var live = db.Stock.AsNoTracking().Where(s => s.TenantId == tenant && db.Products.Any(p => p.Id == s.ProductId && p.DeletedAt == null));
            var totals = await live.GroupBy(_ => 1).Select(g => new
            {
                Products = g.Count(),
                Quantity = g.Sum(s => (long)s.Quantity),
                Reserved = g.Sum(s => (long)s.Reserved),
                OutOfStock = g.Count(s => s.Quantity - s.Reserved == 0),
            }).FirstOrDefaultAsync(cancellationToken);
            var active = await db.Database.SqlQuery<int>($"SELECT count(*)::int AS \"Value\" FROM reservations WHERE tenant_id = {tenant} AND status = 'Active'")
                .SingleAsync(cancellationToken);
            stats = new StockStats(totals?.Products ?? 0, totals?.Quantity ?? 0, totals?.Reserved ?? 0, (totals?.Quantity ?? 0) - (totals?.Reserved ?? 0),
                totals?.OutOfStock ?? 0, active, clock.GetUtcNow());
        }

        try
        {
            await redis.GetDatabase().StringSetAsync(key, JsonSerializer.Serialize(stats, JsonSerializerOptions.Web), StatsTtl)
                .WithinAsync(StatsRedisBudget, clock, cancellationToken);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            logger.LogWarning(ex, "Stats cache unavailable");
        }

        return TypedResults.Ok(stats);
    }

    private static StockResponse From(StockLevel s) => new(s.ProductId, s.Quantity, s.Reserved, s.Available, s.Version);
}
