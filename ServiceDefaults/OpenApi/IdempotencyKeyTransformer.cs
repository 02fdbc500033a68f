using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using Shop.ServiceDefaults.Idempotency;

namespace Shop.ServiceDefaults.OpenApi;

/// <summary>
/// Documents the Idempotency-Key header of the operations that take one (required or optional, as the endpoint's
/// metadata says) and the answers that only a key can cause: 409 while the first request runs, 422 for a key reused
/// with another request.
/// </summary>
internal sealed class IdempotencyKeyTransformer : IOpenApiOperationTransformer
{
    public async Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        if (context.Description.ActionDescriptor.EndpointMetadata.OfType<IdempotentEndpointMetadata>().LastOrDefault() is not { } idempotent)
        {
            return;
        }

        operation.Parameters ??= [];
        operation.Parameters.Add(new OpenApiParameter
        {
            Name = IdempotencyMiddleware.HeaderName,
            In = ParameterLocation.Header,
            Required = idempotent.Required,
            Description = "A unique key per intended change (at most 255 characters), kept 24 hours. The same key with the same request "
                + "replays the first response with Idempotent-Replayed: true, so a retry never applies the change twice.",
            Schema = new OpenApiSchema { Type = JsonSchemaType.String, MaxLength = 255 },
        });
        await ProblemResponses.AddAsync(operation, context, "409", "A request with this Idempotency-Key is still running, or a conflict of the request itself.",
            cancellationToken);
        await ProblemResponses.AddAsync(operation, context, "422", "This Idempotency-Key was used with a different request.", cancellationToken);
    }
}
