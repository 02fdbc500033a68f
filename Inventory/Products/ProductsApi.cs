using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Shop.ServiceDefaults.Security;

namespace Shop.Inventory.Products;

public sealed record MoneyResponse(decimal Amount, string Currency);

public sealed record ProductResponse(Guid Id, string Sku, string Name, string Description, MoneyResponse Price, bool Active, long Version)
{
    public static ProductResponse From(Product p) =>
        new(p.Id, p.Sku, p.Name, p.Description, new MoneyResponse(p.Price.Amount, p.Price.Currency), p.Active, p.Version);
}

public sealed record LookupRequest(IReadOnlyList<Guid>? ProductIds);

public sealed record PagedResponse<T>(IReadOnlyList<T> Items, int Page, int PageSize, int Total);

public static class ProductsApi
{
    public static IEndpointRouteBuilder MapProductsApi(this IEndpointRouteBuilder app)
    {
        var products = app.MapGroup("/v1/products").WithTags("Products");
        products.MapGet("/", ListProducts);
        products.MapGet("/{id:guid}", GetProduct);
        products.MapPost("/lookup", LookupProducts).RequireAuthorization(ShopPolicies.Service);
        return app;
    }

    public static async Task<Results<Ok<PagedResponse<ProductResponse>>, ValidationProblem>> ListProducts(
        InventoryDbContext db, int page = 1, int pageSize = 20, bool? active = null, CancellationToken cancellationToken = default)
    {
        var errors = new Dictionary<string, string[]>();
        if (page < 1)
        {
            errors["page"] = ["Must be 1 or more."];
        }

        if (pageSize is < 1 or > 100)
        {
            errors["pageSize"] = ["Must be between 1 and 100."];
        }

        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        var query = db.Products.AsNoTracking();
        if (active is { } isActive)
        {
            query = query.Where(p => p.Active == isActive);
        }

        var total = await query.CountAsync(cancellationToken);
        var items = await query.OrderBy(p => p.Name).ThenBy(p => p.Id)
            .Skip((page - 1) * pageSize).Take(pageSize)
            .ToListAsync(cancellationToken);
        return TypedResults.Ok(new PagedResponse<ProductResponse>(items.Select(ProductResponse.From).ToList(), page, pageSize, total));
    }

    /// <summary>Internal (service identities only): many products in one call, for pricing an order. Unknown ids are left out.</summary>
    public static async Task<Results<Ok<List<ProductResponse>>, ValidationProblem>> LookupProducts(
        LookupRequest request, InventoryDbContext db, CancellationToken cancellationToken)
    {
        if (request.ProductIds is not { Count: > 0 and <= 100 } ids)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["productIds"] = ["Between 1 and 100 ids."] });
        }

        var products = await db.Products.AsNoTracking().Where(p => ids.Contains(p.Id)).ToListAsync(cancellationToken);
        return TypedResults.Ok(products.Select(ProductResponse.From).ToList());
    }

    public static async Task<Results<Ok<ProductResponse>, NotFound>> GetProduct(Guid id, InventoryDbContext db, CancellationToken cancellationToken)
    {
        var product = await db.Products.AsNoTracking().FirstOrDefaultAsync(p => p.Id == id, cancellationToken);
        return product is null ? TypedResults.NotFound() : TypedResults.Ok(ProductResponse.From(product));
    }
}
