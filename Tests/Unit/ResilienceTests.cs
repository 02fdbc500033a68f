using System.Net;
using Microsoft.Extensions.Options;
using Shop.ServiceDefaults.Resilience;

namespace Shop.Tests.Unit;

public sealed class ResilienceTests
{
    private static readonly HttpResilienceOptions Fast = new()
    {
        RetryBaseDelay = TimeSpan.FromMilliseconds(1),
        AttemptTimeout = TimeSpan.FromMilliseconds(500),
        TotalRequestTimeout = TimeSpan.FromSeconds(5),
    };

    [Theory]
    [InlineData("GET", false, true)]
    [InlineData("HEAD", false, true)]
    [InlineData("PUT", false, true)]
    [InlineData("DELETE", false, true)]
    [InlineData("POST", false, false)]
    [InlineData("PATCH", false, false)]
    [InlineData("POST", true, true)]
    public void Only_idempotent_requests_are_retryable(string method, bool idempotencyKey, bool retryable)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), "http://orders/v1/orders");
        if (idempotencyKey)
        {
            request.Headers.Add("Idempotency-Key", "k-1");
        }

        Assert.Equal(retryable, HttpResiliencePipelines.IsRetryable(request));
    }

    [Fact]
    public async Task A_GET_answered_503_is_retried_until_it_succeeds()
    {
        var inner = new ScriptedHandler(HttpStatusCode.ServiceUnavailable, HttpStatusCode.ServiceUnavailable, HttpStatusCode.OK);
        using var client = Client(inner);

        using var response = await client.GetAsync("http://inventory/v1/products", TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(3, inner.Calls);
    }

    [Fact]
    public async Task A_POST_without_an_idempotency_key_is_sent_once()
    {
        var inner = new ScriptedHandler(HttpStatusCode.ServiceUnavailable, HttpStatusCode.OK);
        using var client = Client(inner);

        using var response = await client.PostAsync("http://orders/v1/orders", new StringContent("{}"), TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(1, inner.Calls);
    }

    [Fact]
    public async Task A_client_error_is_not_retried()
    {
        var inner = new ScriptedHandler(HttpStatusCode.NotFound, HttpStatusCode.OK);
        using var client = Client(inner);

        using var response = await client.GetAsync("http://inventory/v1/products/x", TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal(1, inner.Calls);
    }

    [Fact]
    public async Task Retries_stop_after_the_configured_attempts()
    {
        var inner = new ScriptedHandler(Enumerable.Repeat(HttpStatusCode.BadGateway, 10).ToArray());
        using var client = Client(inner);

        using var response = await client.GetAsync("http://inventory/v1/products", TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal(1 + Fast.MaxRetryAttempts, inner.Calls);
    }

    private static HttpClient Client(HttpMessageHandler inner) =>
        new(new StandardResilienceHandler(new HttpResiliencePipelines(Options.Create(Fast))) { InnerHandler = inner });

    private sealed class ScriptedHandler(params HttpStatusCode[] answers) : HttpMessageHandler
    {
        public int Calls { get; private set; }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var status = answers[Math.Min(Calls, answers.Length - 1)];
            Calls++;
            return Task.FromResult(new HttpResponseMessage(status));
        }
    }
}
