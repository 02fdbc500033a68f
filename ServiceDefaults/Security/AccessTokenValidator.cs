using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Security.Claims;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Shop.ServiceDefaults.Security;

public sealed record TokenValidation(ClaimsPrincipal? Principal, string? Error)
{
    public bool IsValid => Principal is not null;

    public static TokenValidation Invalid(string error) => new(null, error);
}

/// <summary>
/// Validates access tokens per RFC 8725: the algorithm is checked against an allow-list (RS256) before any key
/// is looked up, the type must be at+jwt, the key must be one the Gateway published, and issuer, audience and
/// lifetime must match. alg=none, HMAC with a public key, unknown kids and tampered payloads all fail here.
/// <para>
/// A client sends the same token with every request until it expires, so a token that passed is remembered (by
/// its exact text, signature included) until its expiry: a repeat skips parsing and the signature check, but its
/// lifetime is checked again each time, and its key must still be published. Revocation is checked by the caller on every request.
/// Every request with the token gets its own principal around the token's one <see cref="ReadOnlyClaimsIdentity"/>.
/// </para>
/// </summary>
public sealed class AccessTokenValidator(ISigningKeySource keys, IOptions<TokenOptions> options, TimeProvider clock)
{
    private const int MaxRemembered = 10_000;

    private static readonly JsonWebTokenHandler Handler = new() { MapInboundClaims = false };

    private readonly ConcurrentDictionary<string, Accepted> _accepted = new(StringComparer.Ordinal);

    private sealed record Accepted(ReadOnlyClaimsIdentity Identity, string KeyId, DateTime ValidTo);

    public ValueTask<TokenValidation> ValidateAsync(string token, CancellationToken cancellationToken) =>
        ValidateAsync(token.AsMemory(), cancellationToken);

    /// <summary>
    /// Validates the token in <paramref name="token"/>, a slice of the Authorization header: a remembered token is found
    /// by its characters where they are, and its text is copied out only when it has to be parsed.
    /// </summary>
    public async ValueTask<TokenValidation> ValidateAsync(ReadOnlyMemory<char> token, CancellationToken cancellationToken)
    {
        var remembered = _accepted.GetAlternateLookup<ReadOnlySpan<char>>();
        if (remembered.TryGetValue(token.Span, out var accepted))
        {
            if (clock.GetUtcNow().UtcDateTime < accepted.ValidTo.AddSeconds(options.Value.ClockSkewSeconds)
                && await keys.FindAsync(accepted.KeyId, cancellationToken) is not null)
            {
                return new TokenValidation(new ClaimsPrincipal(accepted.Identity), null);
            }

            remembered.TryRemove(token.Span, out _, out _);
        }

        return await ValidateNewAsync(
            MemoryMarshal.TryGetString(token, out var whole, out var start, out var length) && start == 0 && length == whole.Length ? whole : token.ToString(),
            cancellationToken);
    }

    private async Task<TokenValidation> ValidateNewAsync(string token, CancellationToken cancellationToken)
    {
        JsonWebToken jwt;
        try
        {
            jwt = new JsonWebToken(token);
        }
        catch (ArgumentException)
        {
            return TokenValidation.Invalid("The token is malformed.");
        }

        if (jwt.Alg != SecurityAlgorithms.RsaSha256)
        {
            return TokenValidation.Invalid("The token's algorithm is not allowed.");
        }

        if (!string.Equals(jwt.Typ, "at+jwt", StringComparison.OrdinalIgnoreCase))
        {
            return TokenValidation.Invalid("The token is not an access token.");
        }

        if (string.IsNullOrEmpty(jwt.Kid) || await keys.FindAsync(jwt.Kid, cancellationToken) is not { } key)
        {
            return TokenValidation.Invalid("The token was not signed by a known key.");
        }

        var settings = options.Value;
        var result = await Handler.ValidateTokenAsync(token, new TokenValidationParameters
        {
            ValidIssuer = settings.Issuer,
            ValidAudience = settings.Audience,
            IssuerSigningKey = key,
            TryAllIssuerSigningKeys = false,
            ValidAlgorithms = [SecurityAlgorithms.RsaSha256],
            ValidTypes = ["at+jwt"],
            RequireSignedTokens = true,
            RequireExpirationTime = true,
            ValidateLifetime = true,
            ClockSkew = TimeSpan.FromSeconds(settings.ClockSkewSeconds),
            NameClaimType = ShopClaims.Subject,
            RoleClaimType = ShopClaims.Role,
        });
        if (!result.IsValid)
        {
            return TokenValidation.Invalid(result.Exception?.GetType().Name switch
            {
                nameof(SecurityTokenExpiredException) => "The token has expired.",
                nameof(SecurityTokenInvalidIssuerException) => "The token's issuer is not trusted.",
                nameof(SecurityTokenInvalidAudienceException) => "The token is not for this audience.",
                _ => "The token is not valid.",
            });
        }

        var identity = result.ClaimsIdentity;
        if (!identity.HasClaim(c => c.Type == ShopClaims.Subject) || !identity.HasClaim(c => c.Type == ShopClaims.Role)
            || !identity.HasClaim(c => c.Type == ShopClaims.TokenId))
        {
            return TokenValidation.Invalid("The token lacks required claims.");
        }

        if (_accepted.Count >= MaxRemembered)
        {
            _accepted.Clear();
        }

        var shared = new ReadOnlyClaimsIdentity(identity);
        _accepted[token] = new Accepted(shared, jwt.Kid, jwt.ValidTo);
        return new TokenValidation(new ClaimsPrincipal(shared), null);
    }
}
