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
    public async Task Each_request_gets_its_own_principal_around_the_token_identity_that_no_request_can_change()
    {
        var ct = TestContext.Current.CancellationToken;
        var token = Token(TimeSpan.FromMinutes(5));

        var first = (await _validator.ValidateAsync(token, ct)).Principal!;
        var second = (await _validator.ValidateAsync(token, ct)).Principal!;
        var shared = (ClaimsIdentity)first.Identity!;

        Assert.NotSame(first, second);
        Assert.Throws<InvalidOperationException>(() => shared.AddClaim(new Claim("added", "by one request")));
        Assert.Throws<InvalidOperationException>(() => shared.AddClaims([new Claim("added", "by one request")]));
        Assert.Throws<InvalidOperationException>(() => shared.RemoveClaim(shared.FindFirst(ShopClaims.Role)));
        Assert.Throws<InvalidOperationException>(() => shared.TryRemoveClaim(shared.FindFirst(ShopClaims.Role)));
        first.AddIdentity(new ClaimsIdentity([new Claim("added", "to one request's principal")]));

        Assert.Null(second.FindFirst("added"));
        Assert.Equal("user-1", second.UserId());
        Assert.Equal("demo", second.TenantId());
        Assert.False(second.IsAdmin());
        Assert.False(second.IsService());
        Assert.True(second.IsInRole(ShopClaims.CustomerRole));
        Assert.True(second.Identity!.IsAuthenticated);
        Assert.Equal("user-1", second.Identity.Name);
        Assert.All(shared.Claims, claim => Assert.Same(shared, claim.Subject));

        var copy = shared.Clone();
        copy.AddClaim(new Claim("added", "to a copy"));
        Assert.Equal("to a copy", copy.FindFirst("added")!.Value);
        Assert.Equal("user-1", copy.FindFirst(ShopClaims.Subject)!.Value);
        Assert.Null(shared.FindFirst("added"));
    }

    [Fact]
    public async Task Claim_types_match_exactly_as_the_token_spells_them()
    {
        var ct = TestContext.Current.CancellationToken;
        var principal = (await _validator.ValidateAsync(Token(TimeSpan.FromMinutes(5)), ct)).Principal!;

        Assert.Equal("demo", principal.FindFirst("tid")!.Value);
        Assert.Null(principal.FindFirst("TID"));
        Assert.True(principal.HasClaim("role", "customer"));
        Assert.False(principal.HasClaim("ROLE", "customer"));
        Assert.False(principal.HasClaim("role", "Customer"));
        Assert.Single(principal.FindAll("role"));
        Assert.Empty(principal.FindAll("Role"));
    }

    [Fact]
    public async Task A_token_sliced_from_a_header_is_the_same_token_as_its_text()
    {
        var ct = TestContext.Current.CancellationToken;
        var token = Token(TimeSpan.FromMinutes(5));
        var header = $"Bearer {token}";

        var fromText = (await _validator.ValidateAsync(token, ct)).Principal!;
        var fromHeader = (await _validator.ValidateAsync(header.AsMemory("Bearer ".Length), ct)).Principal!;
        var forged = (await _validator.ValidateAsync(header.AsMemory("Bearer ".Length, token.Length - 1), ct));

        Assert.Same(fromText.Identity, fromHeader.Identity);
        Assert.False(forged.IsValid);
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
