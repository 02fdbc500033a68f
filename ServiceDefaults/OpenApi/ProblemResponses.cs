using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Shop.ServiceDefaults.OpenApi;

/// <summary>Problem details (RFC 9457) responses, sharing one <c>ProblemDetails</c> schema component.</summary>
internal static class ProblemResponses
{
    public const string ContentType = "application/problem+json";
    private const string SchemaId = "ProblemDetails";

    public static async Task AddAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, string status, string description,
        CancellationToken cancellationToken)
    {
        operation.Responses ??= [];
        if (operation.Responses.ContainsKey(status))
        {
            return;
        }

        var document = context.Document!;
        if (document.Components?.Schemas?.ContainsKey(SchemaId) != true)
        {
            document.AddComponent(SchemaId, await context.GetOrCreateSchemaAsync(typeof(ProblemDetails), null, cancellationToken));
        }

        operation.Responses[status] = new OpenApiResponse
        {
            Description = description,
            Content = new Dictionary<string, OpenApiMediaType>
            {
                [ContentType] = new() { Schema = new OpenApiSchemaReference(SchemaId, document) },
            },
        };
    }
}

/// <summary>
/// Any operation can fail in ways its own metadata does not list (a malformed request, a body over the limit, a failed
/// dependency, an unexpected error); all of them answer with problem details.
/// </summary>
internal sealed class ProblemResponsesTransformer : IOpenApiOperationTransformer
{
    public Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken) =>
        ProblemResponses.AddAsync(operation, context, "default", "An error, as problem details with traceId and correlationId.", cancellationToken);
}
