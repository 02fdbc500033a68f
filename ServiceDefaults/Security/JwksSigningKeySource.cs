using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace Shop.ServiceDefaults.Security;

/// <summary>
/// The Gateway's JWKS, fetched through service discovery and held in memory. <see cref="JwksRefresher"/> fetches it when
/// the service starts and again every 80 % of <see cref="TokenOptions.JwksCacheSeconds"/>, so requests find their key
/// without waiting. An unknown key id makes a request look once more (at most every 10 s), which is how a rotated key
/// is picked up without a restart.
/// <para>
/// When the set cannot be fetched, the keys already held are kept: a Gateway restart must not make every service reject
/// valid tokens. A token whose key is not among them then cannot be judged at all: <see cref="FindAsync"/> throws
/// <see cref="SigningKeysUnavailableException"/> (a 503 for the caller) rather than calling the token invalid. A fetch
/// is bounded (<see cref="FetchTimeout"/>) and never ends with a request's cancellation, so no request waits long for
/// one and no client that hangs up can leave a failed look-up behind.
/// </para>
/// </summary>
public sealed class JwksSigningKeySource(IHttpClientFactory clients, IOptions<TokenOptions> options, TimeProvider clock,
    ILogger<JwksSigningKeySource> logger) : ISigningKeySource
{
    public const string ClientName = "jwks";
    public static readonly TimeSpan FetchTimeout = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan MinimumRefreshInterval = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan WarnAfter = TimeSpan.FromSeconds(30);

    private readonly SemaphoreSlim _refresh = new(1, 1);
    private volatile IReadOnlyDictionary<string, SecurityKey> _keys = new Dictionary<string, SecurityKey>();
    private DateTimeOffset _fetchedAt = DateTimeOffset.MinValue;
    private DateTimeOffset _attemptedAt = DateTimeOffset.MinValue;
    private volatile bool _lastAttemptFailed;
    private DateTimeOffset _failingSince;

    /// <summary>When the keys were last fetched; <see cref="DateTimeOffset.MinValue"/> before the first success.</summary>
    public DateTimeOffset FetchedAt => _fetchedAt;

    public async ValueTask<SecurityKey?> FindAsync(string keyId, CancellationToken cancellationToken)
    {
        // Keeping the set current is the refresher's work: a key held is answered from memory, however old the set.
        if (_keys.TryGetValue(keyId, out var cached))
        {
            return cached;
        }

        // A fetch under way ends within its own timeout; one that has not ended by then leaves the token unjudged.
        if (!await _refresh.WaitAsync(FetchTimeout, cancellationToken))
        {
            throw new SigningKeysUnavailableException();
        }

        try
        {
            if (!_keys.ContainsKey(keyId) && clock.GetUtcNow() - _attemptedAt >= MinimumRefreshInterval)
            {
                // Not the request's token: a client that hangs up must not cut short a fetch that others rely on.
                await FetchAsync(CancellationToken.None);
            }

            if (_keys.TryGetValue(keyId, out cached))
            {
                return cached;
            }

            // Without a current set, "not among the keys" does not mean "not a key of the Gateway's".
            return _lastAttemptFailed ? throw new SigningKeysUnavailableException() : null;
        }
        finally
        {
            _refresh.Release();
        }
    }

    /// <summary>Fetches the set now; false when it could not be fetched (the keys it had are kept).</summary>
    public async Task<bool> RefreshAsync(CancellationToken cancellationToken)
    {
        await _refresh.WaitAsync(cancellationToken);
        try
        {
            return await FetchAsync(cancellationToken);
        }
        finally
        {
            _refresh.Release();
        }
    }

    /// <summary>One attempt, at most <see cref="FetchTimeout"/> long; every failure but <paramref name="cancellationToken"/>'s is a failed attempt.</summary>
    private async Task<bool> FetchAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(FetchTimeout);
            using var client = clients.CreateClient(ClientName);
            var json = await client.GetStringAsync(options.Value.JwksUrl, timeout.Token);
            var set = new JsonWebKeySet(json);
            var keys = set.Keys
                .Where(k => k.Kty == JsonWebAlgorithmsKeyTypes.RSA && !string.IsNullOrEmpty(k.Kid) && k.Use is null or "sig")
                .ToDictionary(k => k.Kid, k => (SecurityKey)k, StringComparer.Ordinal);
            // The Gateway always signs with a key it publishes: a set without one is not an answer (a replica that has not
            // loaded its keys, say), and taking it would make every valid token look forged.
            _keys = keys.Count > 0 ? keys : throw new InvalidDataException("The JWKS holds no RSA signing key.");
            _fetchedAt = clock.GetUtcNow();
            _lastAttemptFailed = false;
            return true;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Refused, timed out (ours or the resilience pipeline's), an open circuit, a malformed set: all the same here.
            if (!_lastAttemptFailed)
            {
                _failingSince = clock.GetUtcNow();
            }

            _lastAttemptFailed = true;
            // Services and the Gateway start together: the first few seconds of failures are expected, not a fault.
            var level = clock.GetUtcNow() - _failingSince >= WarnAfter ? LogLevel.Warning : LogLevel.Information;
            logger.Log(level, ex, "Fetching the JWKS from {Url} failed; keeping {Count} known keys", options.Value.JwksUrl, _keys.Count);
            return false;
        }
        finally
        {
            // Counted from the end of the attempt, so a slow failure does not let the next one start at once.
            _attemptedAt = clock.GetUtcNow();
        }
    }
}

/// <summary>The keys that could have signed a token cannot be had right now; the token can be neither accepted nor refused.</summary>
public sealed class SigningKeysUnavailableException() : Exception("The signing keys cannot be fetched right now.");

/// <summary>
/// Fetches the JWKS when the service starts, retrying every second until it has it (the replica is not ready before),
/// then again before it goes stale, so requests find the keys in memory. A refresh that fails is retried after 1 s,
/// doubling up to 10 s: the keys held are still good.
/// </summary>
internal sealed class JwksRefresher(JwksSigningKeySource source, IOptions<TokenOptions> options, TimeProvider clock) : BackgroundService
{
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(10);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var refreshEvery = TimeSpan.FromSeconds(options.Value.JwksCacheSeconds * 0.8);
        var retryDelay = FirstRetryDelay;
        while (!stoppingToken.IsCancellationRequested)
        {
            // A request may have fetched it meanwhile: wait for what is left of this set's time.
            var due = source.FetchedAt + refreshEvery - clock.GetUtcNow();
            if (due > TimeSpan.Zero)
            {
                await Task.Delay(due, clock, stoppingToken);
                continue;
            }

            if (await source.RefreshAsync(stoppingToken))
            {
                retryDelay = FirstRetryDelay;
                continue;
            }

            // RefreshAsync reports every failure as false; only the service's stopping ends this loop.
            await Task.Delay(retryDelay, clock, stoppingToken);
            if (source.FetchedAt != DateTimeOffset.MinValue)
            {
                retryDelay = TimeSpan.FromTicks(Math.Min(retryDelay.Ticks * 2, MaxRetryDelay.Ticks));
            }
        }
    }
}
