using Microsoft.AspNetCore.Http;

namespace Shop.ServiceDefaults.Security;

/// <summary>
/// The tenant of the work in progress, from the caller's token (or set explicitly by background work). The
/// database connection interceptor hands it to PostgreSQL for row-level security.
/// </summary>
public static class TenantContext
{
    private static readonly AsyncLocal<string?> CurrentTenant = new();

    public static string? Current
    {
        get => CurrentTenant.Value;
        set => CurrentTenant.Value = value;
    }

    internal static async Task SetFromUserAsync(HttpContext context, Func<Task> next)
    {
        Current = context.User.TenantId();
        await next();
    }
}
