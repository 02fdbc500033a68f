using System.Security.Claims;
using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Shop.ServiceDefaults.Security;

namespace Shop.Tests.Unit;

/// <summary>
/// The validator remembers tokens that passed, so these check that a remembered token is still refused once it
/// has expired or its key is withdrawn, and that a token differing from a remembered one is checked in full.
/// </summary>
public sealed class AccessTokenValidatorTests : IDisposable
{
    private readonly RSA _rsa = RSA.Create(2048);
    private readonly Keys _keys = new();
    private readonly AccessTokenValidator _validator;

    public AccessTokenValidatorTests()
    {
        _keys.Published["k1"] = new RsaSecurityKey(_rsa) { KeyId = "k1" };
        _validator = new AccessTokenValidator(_keys, Options.Create(new TokenOptions { ClockSkewSeconds = 0 }), TimeProvider.System);
    }

    [Fact]
    public async Task A_remembered_token_is_refused_once_it_has_expired()
    {
        var ct = TestContext.Current.CancellationToken;
        // A first validation pays for loading and compiling the token library, which on a busy machine can take
        // longer than the short lifetime below; do it with another token.
        Assert.True((await _validator.ValidateAsync(Token(TimeSpan.FromMinutes(5)), ct)).IsValid);
        var token = Token(TimeSpan.FromSeconds(5));

        Assert.True((await _validator.ValidateAsync(token, ct)).IsValid);
        Assert.True((await _validator.ValidateAsync(token, ct)).IsValid);
        // exp has whole seconds: wait until a second past it.
        var expires = new JsonWebToken(token).ValidTo;
        await Task.Delay(expires - DateTime.UtcNow + TimeSpan.FromSeconds(1), ct);

        var late = await _validator.ValidateAsync(token, ct);
        Assert.False(late.IsValid);
        Assert.Equal("The token has expired.", late.Error);
    }

    [Fact]
    public async Task A_remembered_token_is_refused_once_its_key_is_withdrawn()
    {
        var ct = TestContext.Current.CancellationToken;
        var token = Token(TimeSpan.FromMinutes(5));
        Assert.True((await _validator.ValidateAsync(token, ct)).IsValid);

        _keys.Published.Clear();

        Assert.False((await _validator.ValidateAsync(token, ct)).IsValid);
    }

    [Fact]
    public async Task A_token_altered_after_its_original_passed_is_checked_in_full()
    {
        var ct = TestContext.Current.CancellationToken;
        var token = Token(TimeSpan.FromMinutes(5));
        Assert.True((await _validator.ValidateAsync(token, ct)).IsValid);

        var parts = token.Split('.');
        var forged = $"{parts[0]}.{Base64UrlEncoder.Encode("""{"sub":"someone-else","role":"admin","jti":"x","tid":"demo","iss":"shop-gateway","aud":"shop-api","exp":4102444800}""")}.{parts[2]}";

        Assert.False((await _validator.ValidateAsync(forged, ct)).IsValid);
    }

    [Fact]
    public async Task Each_request_gets_its_own_principal_with_the_token_claims()
    {
        var ct = TestContext.Current.CancellationToken;
        var token = Token(TimeSpan.FromMinutes(5));

        var first = (await _validator.ValidateAsync(token, ct)).Principal!;
        var second = (await _validator.ValidateAsync(token, ct)).Principal!;
        ((ClaimsIdentity)first.Identity!).AddClaim(new Claim("added", "by one request"));

        Assert.NotSame(first.Identity, second.Identity);
        Assert.Null(second.FindFirst("added"));
        Assert.Equal("user-1", second.UserId());
        Assert.Equal("demo", second.TenantId());
    }

    public void Dispose() => _rsa.Dispose();

    private string Token(TimeSpan lifetime)
    {
        var now = DateTime.UtcNow;
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = "shop-gateway",
            Audience = "shop-api",
            IssuedAt = now,
            NotBefore = now,
            Expires = now + lifetime,
            TokenType = "at+jwt",
            SigningCredentials = new SigningCredentials(_keys.Published["k1"], SecurityAlgorithms.RsaSha256),
            Claims = new Dictionary<string, object>
            {
                [ShopClaims.Subject] = "user-1",
                [ShopClaims.Role] = ShopClaims.CustomerRole,
                [ShopClaims.TokenId] = Guid.NewGuid().ToString(),
                [ShopClaims.Tenant] = "demo",
            },
        });
    }

    private sealed class Keys : ISigningKeySource
    {
        public Dictionary<string, SecurityKey> Published { get; } = [];

        public ValueTask<SecurityKey?> FindAsync(string keyId, CancellationToken cancellationToken) =>
            ValueTask.FromResult(Published.GetValueOrDefault(keyId));
    }
}
