using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Npgsql;
using Shop.Gateway.Identity.Passwords;
using Shop.Gateway.Identity.Signing;
using Shop.Gateway.Identity.Tokens;
using Shop.Gateway.Identity.Users;
using Shop.ServiceDefaults.Security;

namespace Shop.Gateway.Identity;

public static class AuthApi
{
    private const int MinPasswordLength = 10;

    public static IEndpointRouteBuilder MapAuthApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/.well-known/jwks.json", GetJwks).AllowAnonymous().WithTags("Auth");

        var auth = app.MapGroup("/v1/auth").WithTags("Auth");
        auth.MapPost("/register", Register).AllowAnonymous();
        auth.MapPost("/login", Login).AllowAnonymous();
        auth.MapPost("/refresh", Refresh).AllowAnonymous();
        auth.MapPost("/token", IssueServiceToken).AllowAnonymous();
        auth.MapPost("/logout", Logout).RequireAuthorization(ShopPolicies.User);
        auth.MapGet("/me", Me).RequireAuthorization(ShopPolicies.User);
        auth.MapPut("/users/{id:guid}/role", ChangeRole).RequireAuthorization(ShopPolicies.Admin);
        return app;
    }

    public static IResult GetJwks(SigningKeyStore keys, HttpContext context)
    {
        // Before its keys are loaded a starting replica has no set to give. An empty one would tell a service that no
        // token is the Gateway's: it would refuse valid tokens with 401 until its next look (10 s later at the soonest).
        if (!keys.IsLoaded)
        {
            context.Response.Headers.RetryAfter = "1";
            return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "The signing keys are not loaded yet.");
        }

        context.Response.Headers.CacheControl = "public, max-age=300";
        return TypedResults.Json(new { keys = keys.PublicJwks() });
    }

    public static async Task<Results<Created<RegisteredUser>, ValidationProblem, ProblemHttpResult>> Register(
        RegisterRequest request, IdentityDbContext db, IPasswordHasher hasher, TimeProvider clock, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(request.Tenant))
        {
            errors["tenant"] = ["Required."];
        }

        if (request.Email is not { Length: > 2 and <= 254 } email || !email.Contains('@', StringComparison.Ordinal) || email.Any(char.IsWhiteSpace))
        {
            errors["email"] = ["A valid email address is required."];
        }

        if (request.Password is not { Length: >= MinPasswordLength and <= 256 })
        {
            errors["password"] = [$"Between {MinPasswordLength} and 256 characters."];
        }

        if (request.Name is not { Length: > 0 and <= 100 } || string.IsNullOrWhiteSpace(request.Name))
        {
            errors["name"] = ["Between 1 and 100 characters."];
        }

        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors);
        }

        if (!await db.Tenants.AnyAsync(t => t.Id == request.Tenant, cancellationToken))
        {
            return TypedResults.Problem(statusCode: 404, title: "Unknown tenant.", detail: $"There is no tenant '{request.Tenant}'.");
        }

        var user = User.Register(request.Tenant!, request.Email!, request.Name!, await hasher.HashAsync(request.Password!, cancellationToken),
            ShopClaims.CustomerRole, clock.GetUtcNow());
        db.Users.Add(user);
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException ex) when (ex.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
        {
            return TypedResults.Problem(statusCode: 409, title: "Email already registered.", detail: "An account with this email exists in this tenant.");
        }

        return TypedResults.Created("/v1/auth/me", new RegisteredUser(user.Id, user.Email, user.TenantId));
    }

    public static async Task<Results<Ok<TokenResponse>, ProblemHttpResult>> Login(
        LoginRequest request, IdentityDbContext db, IPasswordHasher hasher, LoginThrottle throttle, SessionService sessions,
        TimeProvider clock, HttpContext context, CancellationToken cancellationToken)
    {
        // Nothing longer than a tenant id or an email can be, so no guess makes a throttle key of any size.
        if (request.Tenant is not { Length: > 0 and <= 63 } || request.Email is not { Length: > 0 and <= 254 }
            || request.Password is not { Length: > 0 and <= 256 })
        {
            return InvalidCredentials();
        }

        if (await throttle.BeginAttemptAsync(request.Tenant, request.Email) is { } wait)
        {
            context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            return TypedResults.Problem(statusCode: 429, title: "Too many failed logins.", detail: "This account is temporarily locked; try again later.");
        }

        var normalized = User.Normalize(request.Email);
        var user = await db.Users.SingleOrDefaultAsync(u => u.TenantId == request.Tenant && u.NormalizedEmail == normalized, cancellationToken);
        var verification = PasswordVerification.Failed;
        if (user is null)
        {
            // Same cost as a real check, so response time does not tell whether the account exists.
            await hasher.VerifyDummyAsync(request.Password, cancellationToken);
        }
        else
        {
            verification = await hasher.VerifyAsync(request.Password, user.PasswordHash, cancellationToken);
        }

        if (user is null || verification == PasswordVerification.Failed)
        {
            // Counted when it began.
            return InvalidCredentials();
        }

        if (verification == PasswordVerification.SuccessRehashNeeded)
        {
            user.RehashPassword(await hasher.HashAsync(request.Password, cancellationToken), clock.GetUtcNow());
            try
            {
                await db.SaveChangesAsync(cancellationToken);
            }
            catch (DbUpdateConcurrencyException)
            {
                // The user was changed since it was read (a role change): the session starts with the user as it is now,
                // and a later login makes the new hash.
                await db.Entry(user).ReloadAsync(cancellationToken);
            }
        }

        await throttle.ResetAsync(request.Tenant, request.Email);
        var tokens = await sessions.StartAsync(user, cancellationToken);
        NoStore(context);
        return TypedResults.Ok(new TokenResponse(tokens.AccessToken, tokens.RefreshToken, "Bearer", tokens.ExpiresIn));
    }

    public static async Task<Results<Ok<TokenResponse>, ProblemHttpResult>> Refresh(
        RefreshRequest request, SessionService sessions, HttpContext context, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(request.RefreshToken) || request.RefreshToken.Length > 200)
        {
            return InvalidGrant();
        }

        var tokens = await sessions.RotateAsync(request.RefreshToken, cancellationToken);
        if (tokens is null)
        {
            return InvalidGrant();
        }

        NoStore(context);
        return TypedResults.Ok(new TokenResponse(tokens.AccessToken, tokens.RefreshToken, "Bearer", tokens.ExpiresIn));
    }

    public static async Task<NoContent> Logout(ClaimsPrincipal user, SessionService sessions, RedisTokenRevocationList revocations,
        TimeProvider clock, CancellationToken cancellationToken)
    {
        if (Guid.TryParse(user.FindFirstValue(ShopClaims.Session), out var session))
        {
            await sessions.RevokeFamilyAsync(session, cancellationToken);
        }

        var expires = DateTimeOffset.FromUnixTimeSeconds(long.Parse(user.FindFirstValue("exp")!, System.Globalization.CultureInfo.InvariantCulture));
        await revocations.RevokeAsync(user.FindFirstValue(ShopClaims.TokenId)!, expires, clock.GetUtcNow());
        return TypedResults.NoContent();
    }

    public static async Task<Results<Ok<MeResponse>, NotFound>> Me(ClaimsPrincipal principal, IdentityDbContext db, CancellationToken cancellationToken)
    {
        if (!Guid.TryParse(principal.UserId(), out var id))
        {
            return TypedResults.NotFound();
        }

        var tenant = principal.TenantId();
        var user = await db.Users.AsNoTracking().SingleOrDefaultAsync(u => u.Id == id && u.TenantId == tenant, cancellationToken);
        return user is null ? TypedResults.NotFound() : TypedResults.Ok(new MeResponse(user.Id, user.Email, user.Name, user.TenantId, user.Role));
    }

    public static async Task<Results<Ok<MeResponse>, NotFound, ValidationProblem>> ChangeRole(
        Guid id, ChangeRoleRequest request, ClaimsPrincipal admin, IdentityDbContext db, TimeProvider clock, CancellationToken cancellationToken)
    {
        if (request.Role is not (ShopClaims.CustomerRole or ShopClaims.AdminRole))
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["role"] = ["Must be 'customer' or 'admin'."] });
        }

        // Changes of one user take turns on its row: each reads the version the one before it wrote (the version guards
        // the row against writers that do not lock it, a login's rehash).
        var tenant = admin.TenantId();
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var user = await db.Users.FromSql($"SELECT * FROM users WHERE id = {id} AND tenant_id = {tenant} FOR UPDATE").SingleOrDefaultAsync(cancellationToken);
        if (user is null)
        {
            return TypedResults.NotFound();
        }

        user.ChangeRole(request.Role, clock.GetUtcNow());
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return TypedResults.Ok(new MeResponse(user.Id, user.Email, user.Name, user.TenantId, user.Role));
    }

    /// <summary>The client-credentials grant for service identities (role <c>service</c>, no tenant).</summary>
    public static Results<Ok<ServiceTokenResponse>, ProblemHttpResult> IssueServiceToken(
        ClientCredentialsRequest request, IOptions<IdentityOptions> options, TokenIssuer issuer, HttpContext context)
    {
        if (request.GrantType != "client_credentials")
        {
            return TypedResults.Problem(statusCode: 400, title: "Unsupported grant type.", extensions: new Dictionary<string, object?> { ["error"] = "unsupported_grant_type" });
        }

        if (request.ClientId is null || request.ClientSecret is null
            || !options.Value.ServiceClients.TryGetValue(request.ClientId, out var secret) || !SecretsEqual(secret, request.ClientSecret))
        {
            return TypedResults.Problem(statusCode: 401, title: "Invalid client.", extensions: new Dictionary<string, object?> { ["error"] = "invalid_client" });
        }

        var token = issuer.CreateAccessToken(request.ClientId, tenantId: null, ShopClaims.ServiceRole, sessionId: null);
        NoStore(context);
        return TypedResults.Ok(new ServiceTokenResponse(token.Token, "Bearer", token.ExpiresIn));
    }

    private static bool SecretsEqual(string expected, string presented) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(expected)), SHA256.HashData(Encoding.UTF8.GetBytes(presented)));

    private static ProblemHttpResult InvalidCredentials() =>
        TypedResults.Problem(statusCode: 401, title: "Invalid credentials.", detail: "The tenant, email or password is wrong.");

    private static ProblemHttpResult InvalidGrant() =>
        TypedResults.Problem(statusCode: 400, title: "Invalid refresh token.", detail: "The refresh token is unknown, expired or revoked.",
            extensions: new Dictionary<string, object?> { ["error"] = "invalid_grant" });

    private static void NoStore(HttpContext context)
    {
        context.Response.Headers.CacheControl = "no-store";
        context.Response.Headers.Pragma = "no-cache";
    }
}
