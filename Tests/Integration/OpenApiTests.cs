using System.Net;
using System.Text.Json;
using Shop.Hosting;

namespace Shop.Tests.Integration;

[Collection(AppCollection.Name)]
public sealed class OpenApiTests(AppFixture fixture)
{
    private DistributedApplication App => fixture.App;

    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("gateway", "Gateway API", "/v1/auth/login", "/v1/auth/me")]
    [InlineData("orders", "Orders API", "/v1/orders", "/v1/orders/{id}")]
    [InlineData("inventory", "Inventory API", "/v1/products", "/v1/products/{id}", "/v1/reservations")]
    [InlineData("notifications", "Notifications API")]
    public async Task Every_service_describes_itself_anonymously_in_an_OpenAPI_3_document_with_the_bearer_scheme(
        string service, string title, params string[] paths)
    {
        using var client = App.CreateHttpClient(service, replica: 0);

        using var document = await GetDocumentAsync(client, "/openapi/v1.json");

        var root = document.RootElement;
        Assert.StartsWith("3.", root.GetProperty("openapi").GetString(), StringComparison.Ordinal);
        Assert.Equal(title, root.GetProperty("info").GetProperty("title").GetString());
        Assert.Equal("v1", root.GetProperty("info").GetProperty("version").GetString());
        Assert.All(paths, path => Assert.True(root.GetProperty("paths").TryGetProperty(path, out _), $"{service} documents {path}"));
        var bearer = root.GetProperty("components").GetProperty("securitySchemes").GetProperty("Bearer");
        Assert.Equal("http", bearer.GetProperty("type").GetString());
        Assert.Equal("bearer", bearer.GetProperty("scheme").GetString());
        Assert.Equal("JWT", bearer.GetProperty("bearerFormat").GetString());

        // Another document name is not routed to the library, whose own 404 was plain text: it is a path like any other
        // that is not there, which without a token is a 401 problem.
        using var unknown = await client.GetAsync("/openapi/v2.json", TestContext.Current.CancellationToken);
        Assert.Equal((HttpStatusCode.Unauthorized, "application/problem+json"), (unknown.StatusCode, unknown.Content.Headers.ContentType?.MediaType));
    }

    [Fact]
    public async Task Operations_that_need_a_token_require_the_bearer_scheme_and_document_401_as_problem_details()
    {
        using var gateway = App.CreateHttpClient("gateway", replica: 0);
        using var orders = App.CreateHttpClient("orders", replica: 0);

        using var gatewayDocument = await GetDocumentAsync(gateway, "/openapi/v1.json");
        using var ordersDocument = await GetDocumentAsync(orders, "/openapi/v1.json");

        var login = Operation(gatewayDocument, "/v1/auth/login", "post");
        var me = Operation(gatewayDocument, "/v1/auth/me", "get");
        Assert.False(login.TryGetProperty("security", out _), "login is anonymous");
        Assert.Equal("Bearer", me.GetProperty("security")[0].EnumerateObject().Single().Name);
        Assert.Equal("#/components/schemas/ProblemDetails",
            me.GetProperty("responses").GetProperty("401").GetProperty("content").GetProperty("application/problem+json")
                .GetProperty("schema").GetProperty("$ref").GetString());
        Assert.True(me.GetProperty("responses").TryGetProperty("403", out _), "the user policy can refuse a valid token");
        Assert.True(login.GetProperty("responses").TryGetProperty("default", out _), "errors are problem details everywhere");

        // Orders has no anonymous endpoint: its fallback policy requires a token for every operation.
        var operations = ordersDocument.RootElement.GetProperty("paths").EnumerateObject().SelectMany(path => path.Value.EnumerateObject()).ToList();
        Assert.NotEmpty(operations);
        Assert.All(operations, operation => Assert.True(operation.Value.TryGetProperty("security", out _), $"{operation.Name} requires a token"));
    }

    [Theory]
    [InlineData("orders", "/v1/orders", "post", true)]
    [InlineData("inventory", "/v1/products", "post", false)]
    [InlineData("inventory", "/v1/inventory/{productId}/adjustments", "post", false)]
    public async Task Operations_that_take_an_Idempotency_Key_document_the_header_and_its_409_and_422(string service, string path, string method, bool required)
    {
        using var client = App.CreateHttpClient(service, replica: 0);

        using var document = await GetDocumentAsync(client, "/openapi/v1.json");

        var operation = Operation(document, path, method);
        var header = Assert.Single(operation.GetProperty("parameters").EnumerateArray(), p => p.GetProperty("name").GetString() == "Idempotency-Key");
        Assert.Equal("header", header.GetProperty("in").GetString());
        Assert.Equal(required, header.TryGetProperty("required", out var isRequired) && isRequired.GetBoolean());
        Assert.True(operation.GetProperty("responses").TryGetProperty("409", out _));
        Assert.True(operation.GetProperty("responses").TryGetProperty("422", out _));
        var others = document.RootElement.GetProperty("paths").EnumerateObject().SelectMany(p => p.Value.EnumerateObject()
            .Where(o => !(p.Name == path && o.Name == method) && o.Value.TryGetProperty("parameters", out var parameters)
                && parameters.EnumerateArray().Any(x => x.GetProperty("name").GetString() == "Idempotency-Key")).Select(o => $"{o.Name} {p.Name}"));
        Assert.DoesNotContain($"get {path}", others);
    }

    [Theory]
    [InlineData("orders", "Orders API", "/v1/orders")]
    [InlineData("inventory", "Inventory API", "/v1/products")]
    [InlineData("notifications", "Notifications API", null)]
    public async Task Through_the_gateway_each_service_document_is_reachable_without_a_token(string service, string title, string? path)
    {
        using var client = ShopClients.Anonymous(App);

        using var document = await GetDocumentAsync(client, $"/openapi/{service}/v1.json");

        Assert.Equal(title, document.RootElement.GetProperty("info").GetProperty("title").GetString());
        Assert.False(document.RootElement.TryGetProperty("servers", out _), "no internal address leaks: the UI calls the gateway");
        if (path is not null)
        {
            Assert.True(document.RootElement.GetProperty("paths").TryGetProperty(path, out _), $"{service} documents {path}");
        }
    }

    [Theory]
    [InlineData("gateway")]
    [InlineData("orders")]
    [InlineData("inventory")]
    [InlineData("notifications")]
    public async Task Every_service_serves_the_UI_at_docs_without_a_token(string service)
    {
        using var client = App.CreateHttpClient(service, replica: 0);

        using var response = await client.GetAsync("/docs", Cancellation);
        var html = await response.Content.ReadAsStringAsync(Cancellation);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("<div id=\"swagger-ui\">", html, StringComparison.Ordinal);
        Assert.EndsWith("/docs/index.html", response.RequestMessage!.RequestUri!.AbsolutePath, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_gateway_UI_lists_all_four_documents_and_only_docs_gets_a_relaxed_CSP()
    {
        using var client = ShopClients.Anonymous(App);

        using var page = await client.GetAsync("/docs/index.html", Cancellation);
        using var script = await client.GetAsync("/docs/index.js", Cancellation);
        using var api = await client.GetAsync("/openapi/v1.json", Cancellation);
        var configuration = await script.Content.ReadAsStringAsync(Cancellation);

        Assert.Equal(HttpStatusCode.OK, script.StatusCode);
        foreach (var url in new[] { "/openapi/v1.json", "/openapi/orders/v1.json", "/openapi/inventory/v1.json", "/openapi/notifications/v1.json" })
        {
            Assert.Contains($"\"url\":\"{url}\"", configuration, StringComparison.Ordinal);
        }

        var docsPolicy = page.Headers.GetValues("Content-Security-Policy").Single();
        Assert.Contains("script-src 'self'", docsPolicy, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-eval", docsPolicy, StringComparison.Ordinal);
        Assert.DoesNotContain("script-src 'self' 'unsafe-inline'", docsPolicy, StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", docsPolicy, StringComparison.Ordinal);
        Assert.Equal("default-src 'none'; frame-ancestors 'none'", api.Headers.GetValues("Content-Security-Policy").Single());
    }

    [Fact]
    public async Task Strings_are_described_as_strings_though_requests_read_them_through_the_services_own_converter()
    {
        using var client = ShopClients.Anonymous(App);

        using var document = await GetDocumentAsync(client, "/openapi/inventory/v1.json");
        var schemas = document.RootElement.GetProperty("components").GetProperty("schemas");
        string TypeOf(JsonElement schema) => schema.GetProperty("type") is { ValueKind: JsonValueKind.Array } types
            ? string.Join(",", types.EnumerateArray().Select(t => t.GetString()))
            : schema.GetProperty("type").GetString()!;

        Assert.Equal("null,string", TypeOf(schemas.GetProperty("CreateProductRequest").GetProperty("properties").GetProperty("sku")));
        Assert.Equal("string", TypeOf(schemas.GetProperty("ProductResponse").GetProperty("properties").GetProperty("sku")));
        Assert.Equal("string", TypeOf(schemas.GetProperty("HttpValidationProblemDetails").GetProperty("properties").GetProperty("errors")
            .GetProperty("additionalProperties").GetProperty("items")));
    }

    private static async Task<JsonDocument> GetDocumentAsync(HttpClient client, string url)
    {
        using var response = await client.GetAsync(url, Cancellation);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(Cancellation), cancellationToken: Cancellation);
    }

    private static JsonElement Operation(JsonDocument document, string path, string method) =>
        document.RootElement.GetProperty("paths").GetProperty(path).GetProperty(method);
}
