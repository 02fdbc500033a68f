using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using HttpJsonOptions = Microsoft.AspNetCore.Http.Json.JsonOptions;

namespace Shop.ServiceDefaults.Errors;

/// <summary>
/// Every field of a JSON body whose value is not of its field's type. The JSON reader stops at the first such value; a
/// small body (<see cref="MaxLength"/>) sent to an endpoint that takes JSON is kept (<see cref="RequestBodyGuard"/>), so
/// that a refusal can read it again and name the others too. The walk follows the serializer's own contract for the body
/// type (its property names, ignored properties left out) and tries each value with the service's serializer options,
/// so a field is named only when the serializer itself would refuse it.
/// </summary>
internal static class MistypedBodyFields
{
    /// <summary>The largest body kept to be read again: the services' bodies are small JSON documents.</summary>
    public const long MaxLength = 64 * 1024;

    /// <summary>The most fields one answer names.</summary>
    public const int MaxFields = 50;

    private const int MaxDepth = 16;

    /// <summary>Whether a request's body is kept: JSON for an endpoint that binds it, with a declared length within <see cref="MaxLength"/>.</summary>
    public static bool Keeps(HttpRequest request, Endpoint? endpoint) =>
        request.ContentLength is > 0 and <= MaxLength
        && endpoint?.Metadata.GetMetadata<IAcceptsMetadata>() is { RequestType: not null } accepts
        && accepts.ContentTypes.Any(type => type.EndsWith("json", StringComparison.OrdinalIgnoreCase));

    /// <returns>
    /// Each field by its path in the body (<c>items[1].quantity</c>) and whether its text could not be stored, in the
    /// body's order; empty when the body was not kept or cannot be read again.
    /// </returns>
    public static async Task<List<(string Field, bool Unstorable)>> FindAsync(HttpContext context)
    {
        var found = new List<(string Field, bool Unstorable)>();
        var endpoint = context.Features.Get<IExceptionHandlerFeature>()?.Endpoint ?? context.GetEndpoint();
        if (!Keeps(context.Request, endpoint) || endpoint!.Metadata.GetMetadata<IAcceptsMetadata>()!.RequestType is not { } bodyType
            || !context.Request.Body.CanSeek)
        {
            return found;
        }

        try
        {
            var options = context.RequestServices.GetRequiredService<IOptions<HttpJsonOptions>>().Value.SerializerOptions;
            context.Request.Body.Position = 0;
            using var document = await JsonDocument.ParseAsync(context.Request.Body, new JsonDocumentOptions { MaxDepth = 64 }, context.RequestAborted);
            Walk(document.RootElement, options.GetTypeInfo(bodyType), "", options, found, depth: 0);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Not well-formed after the first mistyped value, the client gone, or a body that cannot be read again: the
            // fields found so far are named, and the first one always is. A refusal never fails on its way out.
        }

        return found;
    }

    private static void Walk(JsonElement element, JsonTypeInfo type, string path, JsonSerializerOptions options, List<(string, bool)> found, int depth)
    {
        if (found.Count >= MaxFields)
        {
            return;
        }

        if (depth < MaxDepth && element.ValueKind == JsonValueKind.Object && type.Kind == JsonTypeInfoKind.Object)
        {
            var comparison = options.PropertyNameCaseInsensitive ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
            foreach (var member in element.EnumerateObject())
            {
                // A property the serializer writes to: one with a setter, or one its constructor takes.
                if (type.Properties.FirstOrDefault(p => (p.Set is not null || p.AssociatedParameter is not null)
                    && string.Equals(p.Name, member.Name, comparison)) is { } property)
                {
                    Walk(member.Value, options.GetTypeInfo(property.PropertyType), path.Length == 0 ? member.Name : $"{path}.{member.Name}", options, found, depth + 1);
                }
            }

            return;
        }

        if (depth < MaxDepth && element.ValueKind == JsonValueKind.Array && type.Kind == JsonTypeInfoKind.Enumerable && type.ElementType is { } itemType)
        {
            var items = options.GetTypeInfo(itemType);
            var index = 0;
            foreach (var item in element.EnumerateArray())
            {
                Walk(item, items, $"{path}[{index++}]", options, found, depth + 1);
            }

            return;
        }

        // A name the body gives twice is tried once (the reader refuses it anyway).
        if (found.Exists(field => field.Item1 == path))
        {
            return;
        }

        try
        {
            element.Deserialize(type);
        }
        catch (JsonException ex)
        {
            found.Add((path, ex is UnstorableTextException));
        }
        catch (Exception ex) when (ex is NotSupportedException or InvalidOperationException or ArgumentException or FormatException or OverflowException)
        {
            // A value the serializer cannot make on its own: left for the endpoint to judge.
        }
    }
}
