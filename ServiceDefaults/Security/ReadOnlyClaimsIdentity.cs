using System.Collections.ObjectModel;
using System.Security.Claims;

namespace Shop.ServiceDefaults.Security;

/// <summary>
/// The identity of a validated access token, made once and shared by every request that presents the token: its
/// claims cannot be added or removed (a request that wants to change them works on <see cref="ClaimsIdentity.Clone"/>).
/// Claim types match exactly, as in the token (RFC 7519 4: claim names are case-sensitive), and a lookup walks an array,
/// where <see cref="ClaimsIdentity"/>'s allocates an enumerator and often a predicate on every call.
/// </summary>
public sealed class ReadOnlyClaimsIdentity : ClaimsIdentity
{
    private readonly Claim[] _claims;
    private readonly ReadOnlyCollection<Claim> _readOnlyClaims;

    public ReadOnlyClaimsIdentity(ClaimsIdentity validated)
        : base(validated.Claims, validated.AuthenticationType, validated.NameClaimType, validated.RoleClaimType)
    {
        // The base constructor copied each claim with this identity as its subject; these are the copies.
        _claims = [.. base.Claims];
        _readOnlyClaims = Array.AsReadOnly(_claims);
    }

    /// <summary>The claims, as a collection that cannot be cast back to the array every request shares.</summary>
    public override IEnumerable<Claim> Claims => _readOnlyClaims;

    public override void AddClaim(Claim claim) => throw ReadOnly();

    public override void AddClaims(IEnumerable<Claim?> claims) => throw ReadOnly();

    public override void RemoveClaim(Claim? claim) => throw ReadOnly();

    public override bool TryRemoveClaim(Claim? claim) => throw ReadOnly();

    public override Claim? FindFirst(string type)
    {
        ArgumentNullException.ThrowIfNull(type);
        foreach (var claim in _claims)
        {
            if (string.Equals(claim.Type, type, StringComparison.Ordinal))
            {
                return claim;
            }
        }

        return null;
    }

    public override IEnumerable<Claim> FindAll(string type)
    {
        ArgumentNullException.ThrowIfNull(type);
        return Array.FindAll(_claims, claim => string.Equals(claim.Type, type, StringComparison.Ordinal));
    }

    public override bool HasClaim(string type, string value)
    {
        ArgumentNullException.ThrowIfNull(type);
        ArgumentNullException.ThrowIfNull(value);
        foreach (var claim in _claims)
        {
            if (string.Equals(claim.Type, type, StringComparison.Ordinal) && string.Equals(claim.Value, value, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    private static InvalidOperationException ReadOnly() =>
        new("This identity is shared by every request that presents the same access token; change a Clone() of it instead.");
}
