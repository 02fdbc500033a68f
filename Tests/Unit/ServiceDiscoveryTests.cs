using Microsoft.Extensions.Configuration;
using Shop.ServiceDefaults.Discovery;

namespace Shop.Tests.Unit;

public sealed class ServiceDiscoveryTests
{
    private static ServiceEndpointResolver Resolver(params (string Key, string Value)[] settings) =>
        new(new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => KeyValuePair.Create(s.Key, (string?)s.Value))).Build());

    [Fact]
    public void Calls_are_spread_round_robin_over_every_replica()
    {
        var resolver = Resolver(("services:inventory:http:0", "http://127.0.0.1:5001"), ("services:inventory:http:1", "http://127.0.0.1:5002"));

        var picked = Enumerable.Range(0, 4).Select(_ => resolver.Resolve("inventory")!.Port).ToList();

        Assert.Equal([5001, 5002, 5001, 5002], picked);
    }

    [Fact]
    public void Endpoints_are_read_once_and_again_after_configuration_reloads()
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection([KeyValuePair.Create("services:inventory:http:0", (string?)"http://127.0.0.1:5001")]).Build();
        var resolver = new ServiceEndpointResolver(configuration);
        var first = resolver.GetEndpoints("inventory");

        configuration["services:inventory:http:1"] = "http://127.0.0.1:5002";
        Assert.Same(first, resolver.GetEndpoints("Inventory"));

        configuration.Reload();
        Assert.Equal([5001, 5002], resolver.GetEndpoints("inventory").Select(u => u.Port));
    }

    [Fact]
    public void An_unknown_service_does_not_resolve()
    {
        Assert.Null(Resolver(("services:inventory:http:0", "http://127.0.0.1:5001")).Resolve("orders"));
    }

    [Fact]
    public async Task The_handler_rewrites_a_logical_host_and_keeps_path_and_query()
    {
        var resolver = Resolver(("services:inventory:http:0", "http://127.0.0.1:5001"));
        var inner = new RecordingHandler();
        using var client = new HttpClient(new ServiceDiscoveryHandler(resolver) { InnerHandler = inner });

        await client.GetAsync("http://inventory/v1/products?page=2", TestContext.Current.CancellationToken);
        await client.GetAsync("http://example.com/x", TestContext.Current.CancellationToken);

        Assert.Equal("http://127.0.0.1:5001/v1/products?page=2", inner.Requests[0].ToString());
        Assert.Equal("http://example.com/x", inner.Requests[1].ToString());
    }

    [Fact]
    public async Task The_https_plus_http_scheme_falls_back_to_the_http_endpoint()
    {
        var resolver = Resolver(("services:orders:http:0", "http://127.0.0.1:6001"));
        var inner = new RecordingHandler();
        using var client = new HttpClient(new ServiceDiscoveryHandler(resolver) { InnerHandler = inner });

        await client.GetAsync("https+http://orders/v1/orders", TestContext.Current.CancellationToken);

        Assert.Equal("http://127.0.0.1:6001/v1/orders", inner.Requests[0].ToString());
    }

    [Fact]
    public async Task A_retried_request_is_resolved_again_and_can_reach_another_replica()
    {
        var resolver = Resolver(("services:inventory:http:0", "http://127.0.0.1:5001"), ("services:inventory:http:1", "http://127.0.0.1:5002"));
        var inner = new RecordingHandler(System.Net.HttpStatusCode.ServiceUnavailable);
        var options = Microsoft.Extensions.Options.Options.Create(new Shop.ServiceDefaults.Resilience.HttpResilienceOptions { RetryBaseDelay = TimeSpan.FromMilliseconds(1) });
        using var client = new HttpClient(new Shop.ServiceDefaults.Resilience.StandardResilienceHandler(new(options))
        {
            InnerHandler = new ServiceDiscoveryHandler(resolver) { InnerHandler = inner },
        });

        using var response = await client.GetAsync("http://inventory/v1/products", TestContext.Current.CancellationToken);

        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal([5001, 5002], inner.Requests.Select(u => u.Port));
    }

    /// <summary>Records every address it is asked for; answers <paramref name="firstAnswer"/> once, then 200.</summary>
    private sealed class RecordingHandler(System.Net.HttpStatusCode firstAnswer = System.Net.HttpStatusCode.OK) : HttpMessageHandler
    {
        public List<Uri> Requests { get; } = [];

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Requests.Add(request.RequestUri!);
            return Task.FromResult(new HttpResponseMessage(Requests.Count == 1 ? firstAnswer : System.Net.HttpStatusCode.OK));
        }
    }
}
