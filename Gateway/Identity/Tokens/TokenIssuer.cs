using System.Security.Claims;
using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Shop.Gateway.Identity.Signing;
using Shop.ServiceDefaults.Security;

namespace Shop.Gateway.Identity.Tokens;

public sealed record IssuedAccessToken(string Token, string TokenId, DateTimeOffset ExpiresAt, int ExpiresIn);

/// <summary>Issues RS256 access tokens (typ at+jwt, kid in the header) and opaque refresh tokens.</summary>
public sealed class TokenIssuer(SigningKeyStore keys, IOptions<IdentityOptions> identity, IOptions<TokenOptions> tokens, TimeProvider clock)
{
    private static readonly JsonWebTokenHandler Handler = new();

    public IssuedAccessToken CreateAccessToken(string subject, string? tenantId, string role, Guid? sessionId)
    {
        var now = clock.GetUtcNow();
        var lifetime = TimeSpan.FromMinutes(identity.Value.AccessTokenMinutes);
        var tokenId = Guid.NewGuid().ToString("N");
        var claims = new List<Claim>
        {
            new(ShopClaims.Subject, subject),
            new(ShopClaims.Role, role),
            new(ShopClaims.TokenId, tokenId),
        };
        if (tenantId is not null)
        {
            claims.Add(new Claim(ShopClaims.Tenant, tenantId));
        }

        if (sessionId is { } session)
        {
            claims.Add(new Claim(ShopClaims.Session, session.ToString("N")));
        }

        var token = Handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = tokens.Value.Issuer,
            Audience = tokens.Value.Audience,
            IssuedAt = now.UtcDateTime,
            NotBefore = now.UtcDateTime,
            Expires = (now + lifetime).UtcDateTime,
            TokenType = "at+jwt",
            Subject = new ClaimsIdentity(claims),
            SigningCredentials = keys.SigningCredentials,
        });
        return new IssuedAccessToken(token, tokenId, now + lifetime, (int)lifetime.TotalSeconds);
    }

    public static (string Token, byte[] Hash) NewRefreshToken()
    {
        var token = Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(32));
        return (token, Hash(token));
    }

    public static byte[] Hash(string refreshToken) => SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(refreshToken));
}
