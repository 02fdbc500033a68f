using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.OpenApi;

namespace Shop.ServiceDefaults.OpenApi;

/// <summary>
/// Marks the operations that need a token, as the authorization middleware decides it: anonymous endpoints are
/// open, endpoints with authorization metadata are not, and the rest fall to the fallback policy (every service
/// has one that requires a user). Those operations also document their 401, and 403 when a policy or role applies.
/// </summary>
internal sealed class BearerSecurityTransformer : IOpenApiOperationTransformer
{
    public const string SchemeId = "Bearer";

    public async Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var metadata = context.Description.ActionDescriptor.EndpointMetadata;
        if (metadata.OfType<IAllowAnonymous>().Any())
        {
            return;
        }

        var restricted = metadata.OfType<IAuthorizeData>().Any(a => a.Policy is not null || a.Roles is not null) || metadata.OfType<AuthorizationPolicy>().Any();
        if (!restricted && !metadata.OfType<IAuthorizeData>().Any() && !await HasFallbackPolicyAsync(context.ApplicationServices))
        {
            return;
        }

        operation.Security ??= [];
        operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(SchemeId, context.Document)] = [] });
        await ProblemResponses.AddAsync(operation, context, "401", "No valid access token: missing, malformed, expired or revoked.", cancellationToken);
        if (restricted)
        {
            await ProblemResponses.AddAsync(operation, context, "403", "The token's role or tenant does not allow this.", cancellationToken);
        }
    }

    private static async Task<bool> HasFallbackPolicyAsync(IServiceProvider services) =>
        services.GetService<IAuthorizationPolicyProvider>() is { } policies && await policies.GetFallbackPolicyAsync() is not null;
}
