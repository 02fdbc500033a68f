using System.Net.Http.Headers;
using Shop.Hosting;

namespace Shop.Tests.Integration;

public sealed record Tokens(string AccessToken, string RefreshToken, string TokenType, int ExpiresIn);

/// <summary>
/// HTTP clients for the Gateway. Each one claims its own client address with X-Forwarded-For (trusted from
/// loopback, where the AppHost's proxy sits), so per-IP rate limits of one test do not leak into another.
/// </summary>
internal static class ShopClients
{
    public static HttpClient Anonymous(DistributedApplication app, int? replica = null, string? clientIp = null)
    {
        var client = app.CreateHttpClient("gateway", replica);
        client.DefaultRequestHeaders.Add("X-Forwarded-For", clientIp ?? RandomIp());
        return client;
    }

    public static string RandomIp() => $"10.{Random.Shared.Next(256)}.{Random.Shared.Next(256)}.{Random.Shared.Next(1, 255)}";

    public static async Task<(string Email, string Password)> RegisterAsync(DistributedApplication app, string tenant = "demo")
    {
        var email = $"c{Guid.NewGuid():N}@example.test";
        const string password = "correct horse battery";
        using var client = Anonymous(app);
        using var response = await client.PostAsJsonAsync("/v1/auth/register", new { tenant, email, password, name = "Test Customer" },
            TestContext.Current.CancellationToken);
        response.EnsureSuccessStatusCode();
        return (email, password);
    }

    public static async Task<Tokens> LoginAsync(DistributedApplication app, string email, string password, string tenant = "demo")
    {
        using var client = Anonymous(app);
        using var response = await client.PostAsJsonAsync("/v1/auth/login", new { tenant, email, password }, TestContext.Current.CancellationToken);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<Tokens>(TestContext.Current.CancellationToken))!;
    }

    /// <summary>An access token of the Orders service's own identity (the client-credentials grant), for Inventory's internal API.</summary>
    public static async Task<string> ServiceTokenAsync(DistributedApplication app)
    {
        var secret = app.Resources.OfType<Shop.Hosting.ApplicationModel.ParameterResource>().Single(p => p.Name == "orders-client-secret").Value;
        using var client = Anonymous(app);
        using var response = await client.PostAsJsonAsync("/v1/auth/token",
            new { grantType = "client_credentials", clientId = "orders", clientSecret = secret }, TestContext.Current.CancellationToken);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(TestContext.Current.CancellationToken)).GetProperty("accessToken").GetString()!;
    }

    /// <summary>A new customer of the tenant, signed in.</summary>
    public static async Task<(HttpClient Client, Tokens Tokens)> CustomerAsync(DistributedApplication app, string tenant = "demo", int? replica = null)
    {
        var (email, password) = await RegisterAsync(app, tenant);
        var tokens = await LoginAsync(app, email, password, tenant);
        return (Authorized(app, tokens.AccessToken, replica), tokens);
    }

    /// <summary>
    /// Many new signed-in customers (at most 8 registrations at a time: Argon2id is CPU-bound); disposing the
    /// crowd disposes their clients.
    /// </summary>
    public static async Task<CustomerCrowd> CustomersAsync(DistributedApplication app, int count)
    {
        using var registering = new SemaphoreSlim(8);
        var clients = await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            await registering.WaitAsync(TestContext.Current.CancellationToken);
            try
            {
                return (await CustomerAsync(app)).Client;
            }
            finally
            {
                registering.Release();
            }
        }));
        return new CustomerCrowd(clients);
    }

    public static async Task<HttpClient> AdminAsync(DistributedApplication app) =>
        Authorized(app, (await LoginAsync(app, "admin@demo.local", AppFixture.AdminPassword)).AccessToken);

    /// <summary>POST /v1/orders with a fresh Idempotency-Key (or the one given).</summary>
    public static Task<HttpResponseMessage> PostOrderAsync(this HttpClient client, object body, string? idempotencyKey = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/orders") { Content = JsonContent.Create(body) };
        request.Headers.Add("Idempotency-Key", idempotencyKey ?? Guid.NewGuid().ToString("N"));
        return client.SendAsync(request, TestContext.Current.CancellationToken);
    }

    public static HttpClient Authorized(DistributedApplication app, string accessToken, int? replica = null)
    {
        var client = Anonymous(app, replica);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", accessToken);
        return client;
    }
}

internal sealed class CustomerCrowd(HttpClient[] clients) : IDisposable
{
    public HttpClient[] Clients { get; } = clients;

    public void Dispose()
    {
        foreach (var client in Clients)
        {
            client.Dispose();
        }
    }
}
