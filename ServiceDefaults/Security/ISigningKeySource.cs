using Microsoft.IdentityModel.Tokens;

namespace Shop.ServiceDefaults.Security;

/// <summary>Public keys that may have signed a token, by key id.</summary>
public interface ISigningKeySource
{
    /// <summary>The key for <paramref name="keyId"/>, refreshing the set when the id is not known yet; null when no such key exists.</summary>
    ValueTask<SecurityKey?> FindAsync(string keyId, CancellationToken cancellationToken);
}
