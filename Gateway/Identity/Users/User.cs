using Shop.ServiceDefaults.Security;

namespace Shop.Gateway.Identity.Users;

public sealed class User
{
    private User()
    {
    }

    public Guid Id { get; private set; }
    public string TenantId { get; private set; } = "";
    public string Email { get; private set; } = "";
    public string NormalizedEmail { get; private set; } = "";
    public string Name { get; private set; } = "";
    public string PasswordHash { get; private set; } = "";
    public string Role { get; private set; } = ShopClaims.CustomerRole;
    public long Version { get; private set; }
    public DateTimeOffset CreatedAt { get; private set; }
    public DateTimeOffset UpdatedAt { get; private set; }

    public static string Normalize(string email) => email.Trim().ToUpperInvariant();

    public static User Register(string tenantId, string email, string name, string passwordHash, string role, DateTimeOffset now) => new()
    {
        Id = Guid.CreateVersion7(now),
        TenantId = tenantId,
        Email = email.Trim(),
        NormalizedEmail = Normalize(email),
        Name = name.Trim(),
        PasswordHash = passwordHash,
        Role = role,
        Version = 1,
        CreatedAt = now,
        UpdatedAt = now,
    };

    public void ChangeRole(string role, DateTimeOffset now)
    {
        if (role is not (ShopClaims.CustomerRole or ShopClaims.AdminRole))
        {
            throw new ArgumentOutOfRangeException(nameof(role), role, "A user is a customer or an admin.");
        }

        Role = role;
        Version++;
        UpdatedAt = now;
    }

    public void RehashPassword(string passwordHash, DateTimeOffset now)
    {
        PasswordHash = passwordHash;
        UpdatedAt = now;
    }
}
