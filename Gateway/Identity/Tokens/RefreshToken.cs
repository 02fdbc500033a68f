namespace Shop.Gateway.Identity.Tokens;

public sealed class RefreshToken
{
    public Guid Id { get; init; }
    public Guid FamilyId { get; init; }
    public Guid UserId { get; init; }
    public byte[] TokenHash { get; init; } = [];
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset ExpiresAt { get; init; }
    public DateTimeOffset? UsedAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
}
