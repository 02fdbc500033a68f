using System.Data.Common;
using System.Security.Cryptography;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Security;

namespace Shop.Gateway.Identity.Signing;

/// <summary>
/// The signing keys every Gateway replica shares (identitydb). A replica creates a key only under an advisory
/// lock, so replicas never race; a new key is published in the JWKS for <c>KeyActivationDelayMinutes</c>
/// before it signs, and an old key stays published until the tokens it signed have expired.
/// </summary>
public sealed class SigningKeyStore(IServiceScopeFactory scopes, IOptions<IdentityOptions> options, TimeProvider clock,
    ILogger<SigningKeyStore> logger) : ISigningKeySource
{
    private const long CreateKeyLock = 0x5348_4F50_4B45_59; // "SHOPKEY"
    private volatile Snapshot? _snapshot;
    private readonly SemaphoreSlim _refresh = new(1, 1);

    private sealed record Snapshot(IReadOnlyDictionary<string, RsaSecurityKey> Keys, RsaSecurityKey Active, DateTimeOffset LoadedAt);

    public bool IsLoaded => _snapshot is not null;

    public SigningCredentials SigningCredentials =>
        new((_snapshot ?? throw new InvalidOperationException("Signing keys are not loaded yet.")).Active, SecurityAlgorithms.RsaSha256);

    /// <summary>The public half of every published key, for /.well-known/jwks.json.</summary>
    public IReadOnlyList<object> PublicJwks() => (_snapshot?.Keys.Values ?? []).Select(key =>
    {
        var parameters = key.Rsa.ExportParameters(includePrivateParameters: false);
        return (object)new
        {
            kty = "RSA",
            use = "sig",
            alg = SecurityAlgorithms.RsaSha256,
            kid = key.KeyId,
            n = Base64UrlEncoder.Encode(parameters.Modulus),
            e = Base64UrlEncoder.Encode(parameters.Exponent),
        };
    }).ToList();

    public async ValueTask<SecurityKey?> FindAsync(string keyId, CancellationToken cancellationToken)
    {
        if (_snapshot?.Keys.TryGetValue(keyId, out var key) == true)
        {
            return key;
        }

        // Another replica may have just published a key: look once more, but not more than every few seconds.
        if (!IsRecent(_snapshot))
        {
            try
            {
                await RefreshAsync(cancellationToken, unlessRecent: true);
            }
            catch (Exception ex) when (ex is DbException or TimeoutException && !cancellationToken.IsCancellationRequested)
            {
                // Without the database the key may exist or not: the token can be neither accepted nor refused.
                logger.LogWarning(ex, "Loading signing keys for key id {Kid} failed", keyId);
                throw new SigningKeysUnavailableException();
            }
        }

        return _snapshot?.Keys.GetValueOrDefault(keyId);
    }

    public Task RefreshAsync(CancellationToken cancellationToken) => RefreshAsync(cancellationToken, unlessRecent: false);

    private bool IsRecent(Snapshot? snapshot) => snapshot is not null && clock.GetUtcNow() - snapshot.LoadedAt <= TimeSpan.FromSeconds(5);

    /// <summary>
    /// Loads the keys. With <paramref name="unlessRecent"/>, not when another caller loaded them while this one waited:
    /// tokens naming unknown key ids, sent at once, then cost one load, not one each in a queue.
    /// </summary>
    private async Task RefreshAsync(CancellationToken cancellationToken, bool unlessRecent)
    {
        await _refresh.WaitAsync(cancellationToken);
        try
        {
            if (unlessRecent && IsRecent(_snapshot))
            {
                return;
            }

            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<IdentityDbContext>();
            var keys = await LoadAsync(db, cancellationToken);
            if (NeedsNewKey(keys))
            {
                keys = await CreateKeyAsync(db, cancellationToken);
            }

            var now = clock.GetUtcNow();
            // Keys already loaded are kept as they are: IdentityModel caches a signature provider per key.
            var known = _snapshot?.Keys ?? new Dictionary<string, RsaSecurityKey>();
            var securityKeys = keys.ToDictionary(k => k.Kid, k => known.GetValueOrDefault(k.Kid) ?? ToSecurityKey(k), StringComparer.Ordinal);
            var active = keys.Where(k => k.ActivatesAt <= now && (k.RetiresAt is null || k.RetiresAt > now))
                .OrderByDescending(k => k.ActivatesAt).First();
            _snapshot = new Snapshot(securityKeys, securityKeys[active.Kid], now);
        }
        finally
        {
            _refresh.Release();
        }
    }

    private async Task<List<SigningKey>> LoadAsync(IdentityDbContext db, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        return await db.SigningKeys.AsNoTracking().Where(k => k.RetiresAt == null || k.RetiresAt > now).ToListAsync(cancellationToken);
    }

    private bool NeedsNewKey(List<SigningKey> keys)
    {
        var now = clock.GetUtcNow();
        var newest = keys.OrderByDescending(k => k.CreatedAt).FirstOrDefault();
        return newest is null
            || !keys.Any(k => k.ActivatesAt <= now)
            || (newest.ActivatesAt <= now && now - newest.CreatedAt > TimeSpan.FromDays(options.Value.KeyRotationDays));
    }

    private async Task<List<SigningKey>> CreateKeyAsync(IdentityDbContext db, CancellationToken cancellationToken)
    {
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock({CreateKeyLock})", cancellationToken);
        var keys = await LoadAsync(db, cancellationToken);
        if (!NeedsNewKey(keys))
        {
            return keys;
        }

        var now = clock.GetUtcNow();
        var settings = options.Value;
        using var rsa = RSA.Create(2048);
        var key = new SigningKey
        {
            Kid = Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(12)),
            PrivateKey = rsa.ExportPkcs8PrivateKeyPem(),
            CreatedAt = now,
            // The very first key signs at once: no token exists yet that a service could need another key for.
            ActivatesAt = keys.Count == 0 ? now : now + TimeSpan.FromMinutes(settings.KeyActivationDelayMinutes),
        };
        foreach (var old in await db.SigningKeys.Where(k => k.RetiresAt == null).ToListAsync(cancellationToken))
        {
            old.RetiresAt = key.ActivatesAt + TimeSpan.FromMinutes(settings.AccessTokenMinutes) + TimeSpan.FromMinutes(5);
        }

        db.SigningKeys.Add(key);
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        logger.LogInformation("Created signing key {Kid}, signing from {ActivatesAt:O}", key.Kid, key.ActivatesAt);
        return await LoadAsync(db, cancellationToken);
    }

    private static RsaSecurityKey ToSecurityKey(SigningKey key)
    {
        var rsa = RSA.Create();
        rsa.ImportFromPem(key.PrivateKey);
        return new RsaSecurityKey(rsa) { KeyId = key.Kid };
    }
}

/// <summary>Loads the keys once the migrations have run, retrying while that fails, and every minute after, to pick up rotations.</summary>
internal sealed class SigningKeyRefresher(IServiceProvider services, SigningKeyStore store, ILogger<SigningKeyRefresher> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await services.WaitForMigrationsAsync<IdentityDbContext>(stoppingToken);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await store.RefreshAsync(stoppingToken);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning(ex, "Loading signing keys failed; retrying");
                await Task.Delay(TimeSpan.FromMilliseconds(500), stoppingToken);
                continue;
            }

            await Task.Delay(TimeSpan.FromMinutes(1), stoppingToken);
        }
    }
}
