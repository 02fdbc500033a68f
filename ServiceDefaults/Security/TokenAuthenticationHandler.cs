using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Shop.ServiceDefaults.Security;

/// <summary>Checks that the access token has not been revoked (logout); the Gateway implements it with Redis.</summary>
public interface ITokenRevocationList
{
    Task<bool> IsRevokedAsync(string tokenId, CancellationToken cancellationToken);
}

/// <summary>Bearer authentication with <see cref="AccessTokenValidator"/>; challenges and denials are problem details.</summary>
public sealed class TokenAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    AccessTokenValidator validator) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Bearer";

    /// <summary>Seconds a caller is asked to wait when the signing keys could not be had.</summary>
    public const int KeysUnavailableRetryAfterSeconds = 5;

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return AuthenticateResult.NoResult();
        }

        TokenValidation validation;
        try
        {
            validation = await validator.ValidateAsync(header.AsMemory("Bearer ".Length).Trim(), Context.RequestAborted);
        }
        catch (SigningKeysUnavailableException unavailable)
        {
            // Neither valid nor invalid: the challenge below answers 503, so the client keeps its token and retries.
            return AuthenticateResult.Fail(unavailable);
        }

        if (!validation.IsValid)
        {
            return AuthenticateResult.Fail(validation.Error!);
        }

        var revocations = Context.RequestServices.GetService<ITokenRevocationList>();
        if (revocations is not null && await revocations.IsRevokedAsync(validation.Principal!.FindFirst(ShopClaims.TokenId)!.Value, Context.RequestAborted))
        {
            return AuthenticateResult.Fail("The token has been revoked.");
        }

        return AuthenticateResult.Success(new AuthenticationTicket(validation.Principal!, SchemeName));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var failure = (await HandleAuthenticateOnceSafeAsync()).Failure;
        if (failure is SigningKeysUnavailableException)
        {
            Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            Response.Headers.RetryAfter = KeysUnavailableRetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await WriteProblemAsync(StatusCodes.Status503ServiceUnavailable, "Tokens cannot be checked right now.",
                "The keys that sign access tokens could not be fetched from the Gateway. The token was not refused; try again shortly.");
            return;
        }

        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = failure is null ? "Bearer" : "Bearer error=\"invalid_token\"";
        await WriteProblemAsync(StatusCodes.Status401Unauthorized, "Authentication is required.", failure?.Message ?? "Send a valid access token: Authorization: Bearer <token>.");
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status403Forbidden;
        return WriteProblemAsync(StatusCodes.Status403Forbidden, "Forbidden.", "Your identity is not allowed to do this.");
    }

    private Task WriteProblemAsync(int status, string title, string detail) =>
        Context.RequestServices.GetRequiredService<IProblemDetailsService>().TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = Context,
            ProblemDetails = new ProblemDetails { Status = status, Title = title, Detail = detail },
        }).AsTask();
}
