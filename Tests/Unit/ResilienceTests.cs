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

    /// <summary>
    /// A request through the Gateway may wait on a service's call to another (Orders pricing an order from the catalog):
    /// the call must give up first, or the client gets the Gateway's 504 instead of the service's 503. Before, both were 30 s.
    /// </summary>
    [Fact]
    public void A_call_gives_up_before_the_Gateway_stops_waiting_for_the_service_that_made_it()
    {
        var gateway = TimeSpan.FromSeconds(new Shop.Gateway.Forwarding.ForwardingOptions().TimeoutSeconds);
        var call = new HttpResilienceOptions();

        Assert.True(call.TotalRequestTimeout <= gateway - TimeSpan.FromSeconds(5),
            $"a call may take {call.TotalRequestTimeout}, and the Gateway waits {gateway}");
        Assert.True(call.AttemptTimeout < call.TotalRequestTimeout);
    }

    [Theory]
    [InlineData(5, 20, 5)]
    [InlineData(19, 20, 19)]
    [InlineData(20, 20, null)]
    [InlineData(25, 20, null)]
    [InlineData(25, 40, 25)]
    [InlineData(31, 60, null)]
    [InlineData(0, 20, null)]
    public void A_Retry_After_is_waited_for_only_when_the_call_could_still_be_made_after_it(int seconds, int totalSeconds, int? waited)
    {
        using var response = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable);
        response.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(seconds));

        Assert.Equal(waited is { } w ? TimeSpan.FromSeconds(w) : null, HttpResiliencePipelines.RetryAfter(response, TimeSpan.FromSeconds(totalSeconds)));
    }

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
