using System.Net;

namespace Shop.Orders.Catalog;

public sealed record CatalogPrice(decimal Amount, string Currency);

public sealed record CatalogProduct(Guid Id, string Sku, string Name, CatalogPrice Price, bool Active);

/// <summary>Reads products from Inventory (<c>http://inventory</c>, resolved by service discovery, with resilience).</summary>
public sealed class CatalogClient(HttpClient http)
{
    public async Task<CatalogProduct?> FindAsync(Guid productId, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync($"/v1/products/{productId}", cancellationToken);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<CatalogProduct>(cancellationToken);
    }
}
