using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Shop.Gateway.Identity.Users;

namespace Shop.Gateway.Identity.Tokens;

public sealed record TokenPair(string AccessToken, string RefreshToken, int ExpiresIn);

/// <summary>
/// Sessions are refresh-token families (RFC 9700): every refresh rotates the token within its family, and
/// presenting a token that was already rotated revokes the whole family, the newest token included.
/// </summary>
public sealed class SessionService(IdentityDbContext db, TokenIssuer issuer, IOptions<IdentityOptions> options, TimeProvider clock)
{
    public async Task<TokenPair> StartAsync(User user, CancellationToken cancellationToken)
    {
        var familyId = Guid.CreateVersion7();
        var refresh = AddRefreshToken(user.Id, familyId);
        await db.SaveChangesAsync(cancellationToken);
        var access = issuer.CreateAccessToken(user.Id.ToString(), user.TenantId, user.Role, familyId);
        return new TokenPair(access.Token, refresh, access.ExpiresIn);
    }

    /// <returns>The new pair, or null when the token is unknown, expired, revoked or reused (invalid_grant).</returns>
    public async Task<TokenPair?> RotateAsync(string refreshToken, CancellationToken cancellationToken)
    {
        var hash = TokenIssuer.Hash(refreshToken);
        var now = clock.GetUtcNow();
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        // The row lock makes two concurrent uses of one token take turns: the second one sees it used.
        var current = await db.RefreshTokens
            .FromSql($"SELECT * FROM refresh_tokens WHERE token_hash = {hash} FOR UPDATE")
            .SingleOrDefaultAsync(cancellationToken);
        if (current is null)
        {
            return null;
        }

        if (current.UsedAt is not null || current.RevokedAt is not null)
        {
            await RevokeFamilyAsync(current.FamilyId, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            return null;
        }

        if (current.ExpiresAt <= now)
        {
            return null;
        }

        var user = await db.Users.AsNoTracking().SingleAsync(u => u.Id == current.UserId, cancellationToken);
        current.UsedAt = now;
        var next = AddRefreshToken(user.Id, current.FamilyId);
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        var access = issuer.CreateAccessToken(user.Id.ToString(), user.TenantId, user.Role, current.FamilyId);
        return new TokenPair(access.Token, next, access.ExpiresIn);
    }

    /// <summary>
    /// Revokes every token of the family. A statement that waited for a rotation to commit still works from the rows it
    /// saw when it began (read committed), so the token that rotation added escaped it: the update runs again until it
    /// finds nothing left. A rotation cannot outrun it, since rotating a revoked token revokes the family.
    /// </summary>
    public async Task RevokeFamilyAsync(Guid familyId, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        while (await db.RefreshTokens.Where(t => t.FamilyId == familyId && t.RevokedAt == null)
            .ExecuteUpdateAsync(t => t.SetProperty(r => r.RevokedAt, now), cancellationToken) > 0)
        {
        }
    }

    private string AddRefreshToken(Guid userId, Guid familyId)
    {
        var now = clock.GetUtcNow();
        var (token, hash) = TokenIssuer.NewRefreshToken();
        db.RefreshTokens.Add(new RefreshToken
        {
            Id = Guid.CreateVersion7(),
            FamilyId = familyId,
            UserId = userId,
            TokenHash = hash,
            CreatedAt = now,
            ExpiresAt = now + TimeSpan.FromDays(options.Value.RefreshTokenDays),
        });
        return token;
    }
}
