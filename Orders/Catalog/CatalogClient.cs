namespace Shop.Orders.Catalog;

public sealed record CatalogPrice(decimal Amount, string Currency);

public sealed record CatalogProduct(Guid Id, string Sku, string Name, CatalogPrice Price, bool Active);

/// <summary>
/// Reads products from Inventory in one call (<c>http://inventory</c>, resolved by service discovery, with
/// resilience), authenticated as the Orders service itself.
/// </summary>
public sealed class CatalogClient(HttpClient http)
{
    public async Task<IReadOnlyDictionary<Guid, CatalogProduct>> LookupAsync(string tenantId, IReadOnlyCollection<Guid> productIds, CancellationToken cancellationToken)
    {
        // A lookup changes nothing, so it is safe to retry: the key lets the resilience handler do so.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/products/lookup")
        {
            Content = JsonContent.Create(new { tenantId, productIds }),
        };
        request.Headers.Add("Idempotency-Key", Guid.NewGuid().ToString("N"));
        using var response = await http.SendAsync(request, cancellationToken);
        response.EnsureSuccessStatusCode();
        var products = await response.Content.ReadFromJsonAsync<List<CatalogProduct>>(cancellationToken) ?? [];
        return products.ToDictionary(p => p.Id);
    }
}
