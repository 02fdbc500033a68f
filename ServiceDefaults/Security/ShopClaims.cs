using System.Security.Claims;

namespace Shop.ServiceDefaults.Security;

/// <summary>The claims of a Shop access token and the roles they carry.</summary>
public static class ShopClaims
{
    public const string Subject = "sub";
    public const string Tenant = "tid";
    public const string Role = "role";
    public const string TokenId = "jti";
    public const string Session = "sid";

    public const string CustomerRole = "customer";
    public const string AdminRole = "admin";
    public const string ServiceRole = "service";

    public static string? UserId(this ClaimsPrincipal principal) => principal.FindFirstValue(Subject);

    public static string? TenantId(this ClaimsPrincipal principal) => principal.FindFirstValue(Tenant);

    public static bool IsAdmin(this ClaimsPrincipal principal) => principal.HasClaim(Role, AdminRole);

    public static bool IsService(this ClaimsPrincipal principal) => principal.HasClaim(Role, ServiceRole);
}

/// <summary>Authorization policy names shared by every service.</summary>
public static class ShopPolicies
{
    /// <summary>A signed-in customer or admin of a tenant (not a service identity).</summary>
    public const string User = "user";
    public const string Admin = "admin";

    /// <summary>Internal endpoints: service identities only.</summary>
    public const string Service = "service";
}
