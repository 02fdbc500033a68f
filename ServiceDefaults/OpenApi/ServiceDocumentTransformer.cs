using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Shop.ServiceDefaults.OpenApi;

/// <summary>Names the document after the service and declares the bearer scheme every service validates.</summary>
internal sealed class ServiceDocumentTransformer(string service) : IOpenApiDocumentTransformer
{
    public Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Info = new OpenApiInfo
        {
            Title = $"{service} API",
            Version = context.DocumentName,
            Description = "Sign in at the Gateway (POST /v1/auth/login) and send the access token as Authorization: Bearer <access token>. "
                + "Errors are RFC 9457 problem details.",
        };

        // No server: clients call the host that served the document, which is the Gateway when it relayed it.
        document.Servers = [];
        document.AddComponent(BearerSecurityTransformer.SchemeId, new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "JWT",
            Description = "An access token from the Gateway: Authorization: Bearer <access token>.",
        });
        return Task.CompletedTask;
    }
}
