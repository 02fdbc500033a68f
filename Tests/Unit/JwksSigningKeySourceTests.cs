using System.Net;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using Shop.ServiceDefaults.Security;

namespace Shop.Tests.Unit;

/// <summary>
/// A service that has no current copy of the Gateway's keys must neither accept nor refuse a token whose key it does
/// not hold (503, not 401), must keep serving the keys it has while the Gateway cannot be reached, and must not
/// fetch on every request.
/// </summary>
public sealed class JwksSigningKeySourceTests
{
    private readonly Jwks _gateway = new();
    private readonly FakeTimeProvider _clock = new();
    private readonly JwksSigningKeySource _source;

    public JwksSigningKeySourceTests()
    {
        _source = new JwksSigningKeySource(new Clients(_gateway), Options.Create(new TokenOptions { JwksCacheSeconds = 300 }), _clock,
            NullLogger<JwksSigningKeySource>.Instance);
    }

    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Before_the_first_fetch_succeeds_a_key_is_neither_found_nor_declared_unknown()
    {
        _gateway.Down = true;

        await Assert.ThrowsAsync<SigningKeysUnavailableException>(() => _source.FindAsync("k1", Cancellation).AsTask());

        _gateway.Down = false;
        Assert.True(await _source.RefreshAsync(Cancellation));
        Assert.Equal("k1", (await _source.FindAsync("k1", Cancellation))?.KeyId);
        // With a current set, a key id that is not in it is simply not a key of the Gateway's.
        _clock.Advance(TimeSpan.FromSeconds(11));
        Assert.Null(await _source.FindAsync("forged", Cancellation));
    }

    [Fact]
    public async Task Known_keys_are_kept_while_the_gateway_cannot_be_reached_and_unknown_ones_cannot_be_judged()
    {
        Assert.Equal("k1", (await _source.FindAsync("k1", Cancellation))?.KeyId);
        _gateway.Down = true;
        _clock.Advance(TimeSpan.FromSeconds(301));

        // Keeping the set current is the refresher's work: a request finds its key without asking the Gateway.
        Assert.Equal("k1", (await _source.FindAsync("k1", Cancellation))?.KeyId);
        Assert.Equal(1, _gateway.Requests);
        await Assert.ThrowsAsync<SigningKeysUnavailableException>(() => _source.FindAsync("k2", Cancellation).AsTask());
        Assert.Equal(2, _gateway.Requests);
    }

    [Fact]
    public async Task A_set_without_a_signing_key_is_not_taken_and_the_keys_held_are_kept()
    {
        Assert.True(await _source.RefreshAsync(Cancellation));
        _gateway.KeyIds.Clear();

        Assert.False(await _source.RefreshAsync(Cancellation));
        Assert.Equal("k1", (await _source.FindAsync("k1", Cancellation))?.KeyId);
        // Without a current set, a key id it does not hold cannot be judged.
        await Assert.ThrowsAsync<SigningKeysUnavailableException>(() => _source.FindAsync("k2", Cancellation).AsTask());
    }

    [Fact]
    public async Task Keys_are_answered_from_memory_and_an_unknown_key_id_is_looked_for_at_most_every_10_seconds()
    {
        for (var i = 0; i < 20; i++)
        {
            Assert.NotNull(await _source.FindAsync("k1", Cancellation));
            Assert.Null(await _source.FindAsync("forged", Cancellation));
        }

        Assert.Equal(1, _gateway.Requests);

        // A key the Gateway published since is found once the interval has passed.
        _gateway.KeyIds.Add("k2");
        _clock.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal("k2", (await _source.FindAsync("k2", Cancellation))?.KeyId);
        Assert.Equal(2, _gateway.Requests);
    }

    [Fact]
    public async Task Any_failure_of_a_fetch_leaves_the_token_unjudged_rather_than_failing_the_request()
    {
        // What the resilience pipeline throws for an open circuit or its own timeout is not an HttpRequestException.
        _gateway.Failure = () => new InvalidOperationException("The circuit is now open");
        _gateway.Down = true;

        await Assert.ThrowsAsync<SigningKeysUnavailableException>(() => _source.FindAsync("k1", Cancellation).AsTask());
    }

    [Fact]
    public async Task A_gateway_that_does_not_answer_holds_a_request_no_longer_than_the_fetch_timeout()
    {
        _gateway.Hang = true;
        var started = System.Diagnostics.Stopwatch.StartNew();

        await Assert.ThrowsAsync<SigningKeysUnavailableException>(() => _source.FindAsync("k1", Cancellation).AsTask());

        // 3 s; the bound is loose for a loaded machine, against the HttpClient's own 100 s.
        Assert.True(started.Elapsed < JwksSigningKeySource.FetchTimeout * 4, $"The look-up took {started.Elapsed}.");
    }

    [Fact]
    public async Task A_client_that_hangs_up_during_a_fetch_does_not_cut_it_short()
    {
        _gateway.Delay = TimeSpan.FromMilliseconds(500);
        using var hangUp = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        hangUp.CancelAfter(TimeSpan.FromMilliseconds(50));

        // The fetch completes for everyone who needs it; nothing is left behind as a failed attempt.
        Assert.Equal("k1", (await _source.FindAsync("k1", hangUp.Token))?.KeyId);
        Assert.Equal("k1", (await _source.FindAsync("k1", Cancellation))?.KeyId);
        Assert.Equal(1, _gateway.Requests);
    }

    [Fact]
    public async Task The_refresher_fetches_the_keys_at_start_retrying_every_second_until_the_gateway_answers()
    {
        _gateway.FailuresLeft = 5;
        _gateway.Failure = () => _gateway.Requests == 1 ? new HttpRequestException("Connection refused") : new InvalidOperationException("The circuit is now open");
        var source = new JwksSigningKeySource(new Clients(_gateway), Options.Create(new TokenOptions()), TimeProvider.System,
            NullLogger<JwksSigningKeySource>.Instance);
        using var refresher = new JwksRefresher(source, Options.Create(new TokenOptions()), TimeProvider.System);

        var started = System.Diagnostics.Stopwatch.StartNew();
        await refresher.StartAsync(Cancellation);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        while (source.FetchedAt == DateTimeOffset.MinValue)
        {
            await Task.Delay(50, timeout.Token);
        }

        var fetchedAfter = started.Elapsed;
        await refresher.StopAsync(Cancellation);
        // Five failures, then the set: no request had to wait for it.
        Assert.Equal(6, _gateway.Requests);
        Assert.Equal("k1", (await source.FindAsync("k1", Cancellation))?.KeyId);
        Assert.Equal(6, _gateway.Requests);
        // The replica is not ready without the keys, so it does not back off before it first has them: about 5 s, where
        // 1, 2, 4, 8 and 10 s apart would have taken 25 s.
        Assert.True(fetchedAfter < TimeSpan.FromSeconds(15), $"The keys were fetched after {fetchedAfter}.");
    }

    /// <summary>The Gateway's JWKS endpoint: every listed key id with the same public key.</summary>
    private sealed class Jwks : HttpMessageHandler
    {
        private readonly RSAParameters _public = RSA.Create(2048).ExportParameters(false);

        public List<string> KeyIds { get; } = ["k1"];

        public bool Down { get; set; }

        public int FailuresLeft { get; set; }

        public Func<Exception> Failure { get; set; } = () => new HttpRequestException("Connection refused");

        public bool Hang { get; set; }

        public TimeSpan Delay { get; set; }

        public int Requests { get; private set; }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Requests++;
            if (Down || FailuresLeft-- > 0)
            {
                throw Failure();
            }

            await Task.Delay(Hang ? Timeout.InfiniteTimeSpan : Delay, cancellationToken);
            var keys = string.Join(',', KeyIds.Select(kid =>
                $$"""{"kty":"RSA","use":"sig","alg":"RS256","kid":"{{kid}}","n":"{{Base64UrlEncoder.Encode(_public.Modulus)}}","e":"{{Base64UrlEncoder.Encode(_public.Exponent)}}"}"""));
            return new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent($$"""{"keys":[{{keys}}]}""") };
        }
    }

    private sealed class Clients(HttpMessageHandler handler) : IHttpClientFactory
    {
        public HttpClient CreateClient(string name) => new(handler, disposeHandler: false);
    }
}
