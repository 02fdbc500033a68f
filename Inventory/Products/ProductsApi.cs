using System.Globalization;
using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using Shop.ServiceDefaults.Idempotency;
using Shop.ServiceDefaults.Paging;
using Shop.ServiceDefaults.Security;

namespace Shop.Inventory.Products;

public sealed record MoneyDto(decimal Amount, string Currency);

/// <summary>A price as a client sends it: both parts are required, and a missing amount is not zero.</summary>
public sealed record MoneyRequest(decimal? Amount, string? Currency);

public sealed record ProductResponse(Guid Id, string Sku, string Name, string Description, MoneyDto Price, bool Active, long Version, int Available,
    DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt)
{
    public static ProductResponse From(CachedProduct p, int available) =>
        new(p.Id, p.Sku, p.Name, p.Description, new MoneyDto(p.Amount, p.Currency), p.Active, p.Version, available, p.CreatedAt, p.UpdatedAt);
}

public sealed record CreateProductRequest(string? Sku, string? Name, string? Description, MoneyRequest? Price, int? InitialStock);

public sealed record UpdateProductRequest(string? Sku, string? Name, string? Description, MoneyRequest? Price, bool? Active);

public sealed record LookupRequest(string? TenantId, IReadOnlyList<Guid>? ProductIds);

/// <param name="Page">The page's number; null for a page asked for by a cursor (<c>after</c>).</param>
public sealed record PagedResponse<T>(IReadOnlyList<T> Items, int? Page, int PageSize, int Total);

public static class ProductsApi
{
    public static IEndpointRouteBuilder MapProductsApi(this IEndpointRouteBuilder app)
    {
        var products = app.MapGroup("/v1/products").WithTags("Products");
        products.MapGet("/", ListProducts).RequireAuthorization(ShopPolicies.User);
        products.MapGet("/{id:guid}", GetProduct);
        products.MapPost("/", CreateProduct).RequireAuthorization(ShopPolicies.Admin).AcceptIdempotencyKey();
        products.MapPut("/{id:guid}", UpdateProduct).RequireAuthorization(ShopPolicies.Admin);
        products.MapDelete("/{id:guid}", DeleteProduct).RequireAuthorization(ShopPolicies.Admin);
        products.MapPost("/lookup", LookupProducts).RequireAuthorization(ShopPolicies.Service);
        return app;
    }

    /// <summary>
    /// The tenant's products by name in reading order (<see cref="NameOrder"/>), a page at a time; optionally only the active
    /// (or inactive) ones, the one with a SKU, or those whose name (in any case, in any alphabet) or SKU (in any case of its
    /// ASCII letters) contains <paramref name="q"/>. A page is read in its order from the (tenant, name, id) index, or the
    /// (tenant, active, name, id) one with <paramref name="active"/>, and the search filters what they give: a trigram index could not serve it, because under
    /// row-level security PostgreSQL applies the policy before any operator that is not leakproof, and ILIKE is not.
    /// <para>
    /// A page is asked for by its number or by <paramref name="after"/>, a cursor after the previous page's last product.
    /// A numbered page is an offset, so products created or deleted between two pages shift the next one (a product is
    /// skipped or shown twice); a cursor page starts after the last product shown, whatever was created or deleted. (A
    /// product renamed across the cursor moves in the list either way.) Every page that has a next one names it, by
    /// cursor, in a <c>Link</c> header (RFC 8288, <c>rel="next"</c>).
    /// </para>
    /// </summary>
    public static async Task<Results<Ok<PagedResponse<ProductResponse>>, ValidationProblem>> ListProducts(
        ClaimsPrincipal user, InventoryDbContext db, HttpContext context, int? page = null, int pageSize = 20, string? after = null, bool? active = null,
        string? sku = null, string? q = null, CancellationToken cancellationToken = default)
    {
        var errors = PageRequest.Errors(page ?? 1, pageSize);
        var from = after is null ? null : ProductCursor.Parse(after);
        if (after is not null && (from is null || page is not null))
        {
            errors["after"] = [page is not null ? "Either page or after, not both." : "Not a cursor this list gave out: follow the Link header's next page."];
        }

        if (sku is not null && (sku.Length > 64 || string.IsNullOrWhiteSpace(sku)))
        {
            errors["sku"] = ["Between 1 and 64 characters."];
        }

        if (q is not null && (q.Length > 100 || string.IsNullOrWhiteSpace(q)))
        {
            errors["q"] = ["Between 1 and 100 characters."];
        }

        // The binder joins a repeated value with commas, which a SKU or a search text may hold itself.
        foreach (var name in (string[])["sku", "q"])
        {
            if (context.Request.Query[name].Count > 1)
            {
                errors[name] = ["Give it once."];
            }
        }

        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        var tenant = user.TenantId() ?? "";
        // One snapshot for the count and the page: read committed gave each its own, and a product created or deleted
        // between them made the total disagree with the items (a client working out the last page from it asked for an
        // empty one, or never asked for a row).
        await using var scope = await db.Database.BeginTenantTransactionAsync(tenant, System.Data.IsolationLevel.RepeatableRead, cancellationToken);
        var query = db.Products.AsNoTracking().Where(p => p.TenantId == tenant && p.DeletedAt == null);
        if (active is { } isActive)
        {
            query = query.Where(p => p.Active == isActive);
        }

        if (sku?.Trim() is { } exactSku)
        {
            query = query.Where(p => p.Sku == exactSku);
        }

        if (q?.Trim() is { } text)
        {
            var pattern = $"%{LikeEscaped(text)}%";
            query = query.Where(p => EF.Functions.ILike(EF.Functions.Collate(p.Name, NameOrder), pattern, "\\") || EF.Functions.ILike(p.Sku, pattern, "\\"));
        }

        var total = await query.CountAsync(cancellationToken);
        var ordered = from is { } last
            ? query.Where(p => EF.Functions.GreaterThan(ValueTuple.Create(EF.Functions.Collate(p.Name, NameOrder), p.Id), ValueTuple.Create(last.Name, last.Id)))
                .OrderBy(p => EF.Functions.Collate(p.Name, NameOrder)).ThenBy(p => p.Id)
            : query.OrderBy(p => EF.Functions.Collate(p.Name, NameOrder)).ThenBy(p => p.Id).Skip(((page ?? 1) - 1) * pageSize);
        // One more than the page, to know whether a next page follows.
        var rows = await ordered.Take(pageSize + 1)
            .Select(p => new { Product = p, Available = db.Stock.Where(s => s.ProductId == p.Id).Select(s => s.Quantity - s.Reserved).FirstOrDefault() })
            .ToListAsync(cancellationToken);
        if (rows.Count > pageSize)
        {
            rows.RemoveAt(pageSize);
            context.Response.Headers.Link = PageCursor.NextLink(context.Request, ProductCursor.Format(rows[^1].Product.Name, rows[^1].Product.Id));
        }

        return TypedResults.Ok(new PagedResponse<ProductResponse>(
            rows.Select(r => ProductResponse.From(r.Product.ToCached(), r.Available)).ToList(), from is null ? page ?? 1 : null, pageSize, total));
    }

    /// <summary>
    /// How names are ordered and searched: ICU's root collation, the same reading order for every language, with case
    /// folded in every alphabet (the database's own collation is byte order, which folds ASCII only). Its index is built
    /// by migration 0010; SKUs are identifiers and keep byte order.
    /// </summary>
    private const string NameOrder = "und-x-icu";

    /// <summary>The text matched literally by LIKE with <c>\</c> as the escape: its wildcards and escapes escaped.</summary>
    private static string LikeEscaped(string text) => text.Replace("\\", "\\\\", StringComparison.Ordinal)
        .Replace("%", "\\%", StringComparison.Ordinal).Replace("_", "\\_", StringComparison.Ordinal);

    /// <summary>
    /// Served from this replica's memory or the shared cache when present, with availability cached for a second at
    /// most (see <see cref="ProductCache"/>); a miss reads the product and its availability in one query. What a user
    /// reads from the database is read in the user's tenant scope; a service sees every tenant.
    /// </summary>
    public static async Task<Results<Ok<ProductResponse>, NotFound>> GetProduct(Guid id, ClaimsPrincipal user,
        ProductCache cache, StaleFloors floors, NpgsqlDataSource dataSource, HttpContext context, CancellationToken cancellationToken)
    {
        var read = await cache.GetAsync(id);
        var (product, available) = (read.Product, read.Available);
        var scope = user.IsService() ? null : user.TenantId() ?? "";
        if (product is null)
        {
            var readAt = cache.Stamp();
            var row = await ReadProductAsync(dataSource, scope, id, cancellationToken);
            if (row is null)
            {
                return TypedResults.NotFound();
            }

            (product, available, _) = row.Value;
            // A floor above the version just read is a write on its way (it commits, then stores its value) or one that
            // never committed, which would keep the product out of the cache for a day unless it is settled.
            if (await cache.FillAsync(read, product, row.Value.Available, row.Value.StockVersion, readAt) is { } floor
                && await floors.SettleAsync(id, floor, cancellationToken))
            {
                await cache.FillAsync(read, product, row.Value.Available, row.Value.StockVersion, readAt, again: true);
            }
        }

        if (scope is not null && product.TenantId != scope)
        {
            return TypedResults.NotFound();
        }

        if (available is null)
        {
            var readAt = cache.Stamp();
            await using var stock = Batch(dataSource, scope, new NpgsqlBatchCommand("SELECT quantity - reserved, version FROM stock WHERE product_id = $1")
            {
                Parameters = { new() { Value = id } },
            });
            await using var reader = await ReadLastAsync(stock, cancellationToken);
            var found = await reader.ReadAsync(cancellationToken);
            available = found ? reader.GetInt32(0) : 0;
            cache.FillAvailability(read, product, available.Value, found ? reader.GetInt64(1) : 0, readAt);
        }

        context.Response.Headers.ETag = ETag(product.Version);
        return TypedResults.Ok(ProductResponse.From(product, available.Value));
    }

    /// <summary>A product that is not deleted, with its availability, in one round trip; in the tenant's scope unless it is null.</summary>
    private static async Task<(CachedProduct Product, int Available, long StockVersion)?> ReadProductAsync(NpgsqlDataSource dataSource, string? scope,
        Guid id, CancellationToken cancellationToken)
    {
        await using var batch = Batch(dataSource, scope, new NpgsqlBatchCommand("""
            SELECT p.id, p.tenant_id, p.sku, p.name, p.description, p.price_amount, p.price_currency, p.active, p.version,
                   COALESCE(s.quantity - s.reserved, 0), COALESCE(s.version, 0), p.created_at, p.updated_at
            FROM products p LEFT JOIN stock s ON s.product_id = p.id
            WHERE p.id = $1 AND p.deleted_at IS NULL
            """)
        {
            Parameters = { new() { Value = id } },
        });
        await using var reader = await ReadLastAsync(batch, cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return (new CachedProduct(reader.GetGuid(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
            reader.GetDecimal(5), reader.GetString(6), reader.GetBoolean(7), reader.GetInt64(8), reader.GetFieldValue<DateTimeOffset>(11),
            reader.GetFieldValue<DateTimeOffset>(12)), reader.GetInt32(9), reader.GetInt64(10));
    }

    /// <summary>
    /// The batch's reader, at the result of its last statement. A data source's batch returns its connection to the pool
    /// when the reader closes, so a reader that fails on the way there (the client gone, a timeout) is closed here.
    /// </summary>
    private static async Task<NpgsqlDataReader> ReadLastAsync(NpgsqlBatch batch, CancellationToken cancellationToken)
    {
        var reader = await batch.ExecuteReaderAsync(cancellationToken);
        try
        {
            for (var i = 1; i < batch.BatchCommands.Count; i++)
            {
                await reader.NextResultAsync(cancellationToken);
            }

            return reader;
        }
        catch
        {
            await reader.DisposeAsync();
            throw;
        }
    }

    /// <summary>One statement, after the one that enters the tenant's scope when there is one.</summary>
    private static NpgsqlBatch Batch(NpgsqlDataSource dataSource, string? scope, NpgsqlBatchCommand command)
    {
        var batch = dataSource.CreateBatch();
        if (scope is not null)
        {
            batch.BatchCommands.Add(TenantScope.Command(scope));
        }

        batch.BatchCommands.Add(command);
        return batch;
    }

    /// <summary>The reason the history gives for the stock a product was created with.</summary>
    public const string InitialStockReason = "initial stock";

    public static async Task<Results<Created<ProductResponse>, ValidationProblem, ProblemHttpResult>> CreateProduct(
        CreateProductRequest request, ClaimsPrincipal admin, InventoryDbContext db, TimeProvider clock, HttpContext context, CancellationToken cancellationToken)
    {
        var errors = Validate(request.Sku, request.Name, request.Description, request.Price);
        if (request.InitialStock is not (>= 0 and <= 1_000_000))
        {
            errors["initialStock"] = ["Between 0 and 1000000."];
        }

        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        var now = clock.GetUtcNow();
        var product = Product.Create(admin.TenantId()!, request.Sku!.Trim(), request.Name!.Trim(), request.Description?.Trim() ?? "",
            Money.Of(request.Price!.Amount!.Value, request.Price.Currency!), now);
        db.Products.Add(product);
        var stock = Stock.StockLevel.Create(product.Id, product.TenantId, request.InitialStock!.Value, now);
        db.Stock.Add(stock);
        var location = $"/v1/products/{product.Id}";
        var response = ProductResponse.From(product.ToCached(), request.InitialStock.Value);
        try
        {
            await using var scope = await db.Database.BeginTenantTransactionAsync(product.TenantId, cancellationToken);
            // A failed save ends the request and its whole transaction, so EF Core's savepoint around it (two more
            // statements) would buy nothing; without it the product and the stored answer share one transaction id.
            db.Database.AutoSavepointsEnabled = false;
            await db.SaveChangesAsync(cancellationToken);
            // The stock a product starts with opens its adjustment history: the quantity the first adjustment changed is
            // one the history shows. None for no stock: an adjustment changes the quantity.
            if (stock.Quantity > 0)
            {
                await db.Database.ExecuteSqlAsync($"""
                    INSERT INTO stock_adjustments (id, tenant_id, product_id, delta, reason, actor, quantity_after, stock_version)
                    VALUES ({Guid.CreateVersion7(now)}, {product.TenantId}, {product.Id}, {stock.Quantity}, {InitialStockReason}, {admin.UserId()!},
                        {stock.Quantity}, {stock.Version})
                    """, cancellationToken);
            }

            // With an Idempotency-Key, the product and the answer a retry will get commit together.
            if (context.IdempotencyClaimIfAny() is { } claim)
            {
                await claim.CompleteAsync(db, StatusCodes.Status201Created, location, response, cancellationToken, ETag(product.Version));
            }

            await scope.CommitAsync(cancellationToken);
        }
        catch (DbUpdateException ex) when (ex.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
        {
            return TypedResults.Problem(statusCode: 409, title: "SKU already in use.", detail: $"Another product of this tenant has SKU '{product.Sku}'.");
        }

        context.Response.Headers.ETag = ETag(product.Version);
        return TypedResults.Created(location, response);
    }

    /// <summary>Requires If-Match with the current version (428 without it, 412 when stale): two admins cannot overwrite each other.</summary>
    public static async Task<Results<Ok<ProductResponse>, NotFound, ValidationProblem, ProblemHttpResult>> UpdateProduct(
        Guid id, UpdateProductRequest request, ClaimsPrincipal admin, InventoryDbContext db, ProductCache cache, TimeProvider clock,
        HttpContext context, CancellationToken cancellationToken)
    {
        var ifMatch = IfMatch.Parse(context.Request.Headers.IfMatch);
        if (!ifMatch.IsPresent)
        {
            return TypedResults.Problem(statusCode: 428, title: "If-Match is required.", detail: "Send the product's current version (its ETag) in If-Match.");
        }

        if (ifMatch.IsMalformed)
        {
            return MalformedIfMatch();
        }

        var errors = Validate(request.Sku, request.Name, request.Description, request.Price);
        if (request.Active is null)
        {
            errors["active"] = ["Required."];
        }

        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        var tenant = admin.TenantId() ?? "";
        await using var scope = await db.Database.BeginTenantTransactionAsync(tenant, cancellationToken);
        var product = await db.Products.FirstOrDefaultAsync(p => p.Id == id && p.TenantId == tenant && p.DeletedAt == null, cancellationToken);
        if (product is null)
        {
            return TypedResults.NotFound();
        }

        if (!ifMatch.Matches(ETag(product.Version)))
        {
            return PreconditionFailed(product.Version);
        }

        void Apply() => product.Update(request.Sku!.Trim(), request.Name!.Trim(), request.Description?.Trim() ?? "",
            Money.Of(request.Price!.Amount!.Value, request.Price.Currency!), request.Active!.Value, clock.GetUtcNow());

        Apply();
        while (true)
        {
            try
            {
                await db.SaveChangesAsync(cancellationToken);
                break;
            }
            catch (DbUpdateConcurrencyException) when (ifMatch.IsAny)
            {
                // "*" asks only that the product exists (RFC 9110, 13.1.1), and another write came between the read and
                // this one: the product as it is now is updated, unless that write deleted it.
                await db.Entry(product).ReloadAsync(cancellationToken);
                if (product.DeletedAt is not null)
                {
                    return TypedResults.NotFound();
                }

                Apply();
            }
            catch (DbUpdateConcurrencyException)
            {
                return PreconditionFailed(null);
            }
            catch (DbUpdateException ex) when (ex.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
            {
                return TypedResults.Problem(statusCode: 409, title: "SKU already in use.", detail: $"Another product of this tenant has SKU '{product.Sku}'.");
            }
        }

        var available = await db.Stock.AsNoTracking().Where(s => s.ProductId == id).Select(s => s.Quantity - s.Reserved).FirstOrDefaultAsync(cancellationToken);

        // The row stays locked until the commit, so no other write of this product can come between.
        if (!await cache.InvalidateBeforeWriteAsync(id, product.Version))
        {
            return CacheUnavailable(context);
        }

        // Announced: committed even if the client has gone, rather than leave the floor above the version for a reader to settle.
        await scope.CommitAsync(CancellationToken.None);
        await cache.WrittenAsync(product.ToCached());
        context.Response.Headers.ETag = ETag(product.Version);
        return TypedResults.Ok(ProductResponse.From(product.ToCached(), available));
    }

    public static async Task<Results<NoContent, NotFound, ProblemHttpResult>> DeleteProduct(
        Guid id, ClaimsPrincipal admin, InventoryDbContext db, ProductCache cache, TimeProvider clock, HttpContext context, CancellationToken cancellationToken)
    {
        // Without If-Match the delete is unconditional; with it, only the version it names is deleted.
        var ifMatch = IfMatch.Parse(context.Request.Headers.IfMatch);
        if (ifMatch.IsMalformed)
        {
            return MalformedIfMatch();
        }

        var tenant = admin.TenantId() ?? "";
        await using var scope = await db.Database.BeginTenantTransactionAsync(tenant, cancellationToken);
        var product = await db.Products.FirstOrDefaultAsync(p => p.Id == id && p.TenantId == tenant && p.DeletedAt == null, cancellationToken);
        if (product is null)
        {
            return TypedResults.NotFound();
        }

        if (ifMatch.IsPresent && !ifMatch.Matches(ETag(product.Version)))
        {
            return PreconditionFailed(product.Version);
        }

        product.Delete(clock.GetUtcNow());
        while (true)
        {
            try
            {
                await db.SaveChangesAsync(cancellationToken);
                break;
            }
            catch (DbUpdateConcurrencyException) when (!ifMatch.IsPresent || ifMatch.IsAny)
            {
                // Unconditional (or If-Match: *, which asks only that the product exists), and another write came
                // between the read and this one: the product as it is now is deleted, unless that write deleted it
                // (404). A client that named no version gets no 412.
                await db.Entry(product).ReloadAsync(cancellationToken);
                if (product.DeletedAt is not null)
                {
                    return TypedResults.NotFound();
                }

                product.Delete(clock.GetUtcNow());
            }
            catch (DbUpdateConcurrencyException)
            {
                return PreconditionFailed(null);
            }
        }

        if (!await cache.InvalidateBeforeWriteAsync(id, product.Version))
        {
            return CacheUnavailable(context);
        }

        await scope.CommitAsync(CancellationToken.None);
        await cache.DeletedAsync();
        return TypedResults.NoContent();
    }

    /// <summary>
    /// Internal (service identities only): many products of one tenant in one call, for pricing an order. Unknown
    /// ids and other tenants' products are left out, so an order can never contain another tenant's product; the
    /// query runs in that tenant's scope, so the database leaves them out too.
    /// </summary>
    public static async Task<Results<Ok<List<ProductResponse>>, ValidationProblem>> LookupProducts(
        LookupRequest request, InventoryDbContext db, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        if (request.ProductIds is not { Count: > 0 and <= 100 } ids)
        {
            errors["productIds"] = ["Between 1 and 100 ids."];
            ids = [];
        }

        if (request.TenantId is not { Length: > 0 } tenant)
        {
            errors["tenantId"] = ["Required: the tenant the products belong to."];
            tenant = "";
        }

        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        await using var scope = await db.Database.BeginTenantTransactionAsync(tenant, cancellationToken);
        var rows = await db.Products.AsNoTracking().Where(p => ids.Contains(p.Id) && p.TenantId == tenant && p.DeletedAt == null)
            .Select(p => new { Product = p, Available = db.Stock.Where(s => s.ProductId == p.Id).Select(s => s.Quantity - s.Reserved).FirstOrDefault() })
            .ToListAsync(cancellationToken);
        return TypedResults.Ok(rows.Select(r => ProductResponse.From(r.Product.ToCached(), r.Available)).ToList());
    }

    private static Dictionary<string, string[]> Validate(string? sku, string? name, string? description, MoneyRequest? price)
    {
        var errors = new Dictionary<string, string[]>();
        if (sku is not { Length: > 0 and <= 64 } || !ProductText.HasVisibleCharacter(sku))
        {
            errors["sku"] = ["Between 1 and 64 characters."];
        }
        else if (!ProductText.IsCleanIdentifier(sku))
        {
            errors["sku"] = ["No control, line-separating or invisible formatting characters."];
        }

        if (name is not { Length: > 0 and <= 200 } || !ProductText.HasVisibleCharacter(name))
        {
            errors["name"] = ["Between 1 and 200 characters, some of them visible."];
        }
        else if (!ProductText.IsCleanLine(name))
        {
            errors["name"] = ["No control or line-separating characters (a name is one line) and no direction overrides."];
        }

        if (description is { Length: > 4000 })
        {
            errors["description"] = ["At most 4000 characters."];
        }
        else if (description is not null && !ProductText.IsCleanText(description))
        {
            errors["description"] = ["No control characters other than line breaks and tabs, and no direction overrides."];
        }

        if (price is null)
        {
            errors["price"] = ["Required."];
        }
        else
        {
            if (price.Amount is not { } amount)
            {
                errors["price.amount"] = ["Required."];
            }
            else if (amount is < 0 or > 10_000_000m || decimal.Round(amount, 2) != amount)
            {
                errors["price.amount"] = ["Between 0 and 10000000, at most two decimals."];
            }

            if (!Money.IsValidCurrency(price.Currency))
            {
                errors["price.currency"] = ["A three-letter ISO 4217 code in capitals."];
            }
        }

        return errors;
    }

    private static ProblemHttpResult MalformedIfMatch() =>
        TypedResults.Problem(statusCode: 400, title: "If-Match is malformed.",
            detail: "Send the product's ETag as it was given (a quoted version, such as \"3\"), a list of them, or *.");

    private static string ETag(long version) => $"\"{version.ToString(CultureInfo.InvariantCulture)}\"";

    /// <summary>The product's cached copies could not be invalidated, so the write was rolled back: nothing changed.</summary>
    private static ProblemHttpResult CacheUnavailable(HttpContext context)
    {
        context.Response.Headers.RetryAfter = "5";
        return TypedResults.Problem(statusCode: 503, title: "The product cannot be changed right now.",
            detail: "Its cached copies could not be invalidated, so the change was not made. Try again shortly.");
    }

    private static ProblemHttpResult PreconditionFailed(long? current) =>
        TypedResults.Problem(statusCode: 412, title: "The product has changed.",
            detail: current is { } v ? $"Its current version is {v}; read it again and retry." : "It was changed concurrently; read it again and retry.");
}
