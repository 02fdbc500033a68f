namespace Shop.Gateway.Identity.Signing;

public sealed class SigningKey
{
    public string Kid { get; init; } = "";

    /// <summary>PKCS#8 PEM. Kept in identitydb so every replica signs with the same keys; a KMS would hold it in production.</summary>
    public string PrivateKey { get; init; } = "";

    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset ActivatesAt { get; init; }
    public DateTimeOffset? RetiresAt { get; set; }
}
