using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace Shop.ServiceDefaults.Security;

/// <summary>
/// The Gateway's JWKS, fetched through service discovery and cached. An unknown key id triggers one refresh
/// (at most every 10 s), which is how a rotated key is picked up without a restart.
/// </summary>
public sealed class JwksSigningKeySource(IHttpClientFactory clients, IOptions<TokenOptions> options, TimeProvider clock,
    ILogger<JwksSigningKeySource> logger) : ISigningKeySource
{
    public const string ClientName = "jwks";
    private static readonly TimeSpan MinimumRefreshInterval = TimeSpan.FromSeconds(10);

    private readonly SemaphoreSlim _refresh = new(1, 1);
    private volatile IReadOnlyDictionary<string, SecurityKey> _keys = new Dictionary<string, SecurityKey>();
    private DateTimeOffset _fetchedAt = DateTimeOffset.MinValue;

    public async ValueTask<SecurityKey?> FindAsync(string keyId, CancellationToken cancellationToken)
    {
        var fresh = clock.GetUtcNow() - _fetchedAt < TimeSpan.FromSeconds(options.Value.JwksCacheSeconds);
        if (fresh && _keys.TryGetValue(keyId, out var cached))
        {
            return cached;
        }

        await _refresh.WaitAsync(cancellationToken);
        try
        {
            if (_keys.TryGetValue(keyId, out cached) && clock.GetUtcNow() - _fetchedAt < TimeSpan.FromSeconds(options.Value.JwksCacheSeconds))
            {
                return cached;
            }

            if (clock.GetUtcNow() - _fetchedAt >= MinimumRefreshInterval)
            {
                await FetchAsync(cancellationToken);
            }

            return _keys.GetValueOrDefault(keyId);
        }
        finally
        {
            _refresh.Release();
        }
    }

    private async Task FetchAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var client = clients.CreateClient(ClientName);
            var json = await client.GetStringAsync(options.Value.JwksUrl, cancellationToken);
            var set = new JsonWebKeySet(json);
            _keys = set.Keys
                .Where(k => k.Kty == JsonWebAlgorithmsKeyTypes.RSA && !string.IsNullOrEmpty(k.Kid) && k.Use is null or "sig")
                .ToDictionary(k => k.Kid, k => (SecurityKey)k, StringComparer.Ordinal);
            _fetchedAt = clock.GetUtcNow();
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or ArgumentException)
        {
            // Keep the keys we have: a Gateway restart must not make every service reject valid tokens.
            logger.LogWarning(ex, "Fetching the JWKS from {Url} failed; keeping {Count} known keys", options.Value.JwksUrl, _keys.Count);
            _fetchedAt = clock.GetUtcNow() - TimeSpan.FromSeconds(options.Value.JwksCacheSeconds) + MinimumRefreshInterval;
        }
    }
}
