using System.Collections;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using HttpJsonOptions = Microsoft.AspNetCore.Http.Json.JsonOptions;

namespace Shop.ServiceDefaults.Errors;

/// <summary>
/// Every field of a JSON body whose value is not of its field's type. The JSON reader stops at the first such value; the
/// body is kept for endpoints that take JSON (<see cref="RequestBodyGuard"/>), so that a refusal can read it again and
/// name the others too. Each value is tried on its own with the service's own serializer options, so a field is named
/// only when the serializer itself would refuse it.
/// </summary>
internal static class MistypedBodyFields
{
    /// <summary>Whether the endpoint binds a JSON body, which is then kept to be read again.</summary>
    public static bool TakesJson(Endpoint? endpoint) =>
        endpoint?.Metadata.GetMetadata<IAcceptsMetadata>() is { RequestType: not null } accepts
        && accepts.ContentTypes.Any(type => type.EndsWith("json", StringComparison.OrdinalIgnoreCase));

    /// <returns>Each field by its path in the body (<c>items[1].quantity</c>) and whether its text could not be stored; empty when the body cannot be read again.</returns>
    public static async Task<List<(string Field, bool Unstorable)>> FindAsync(HttpContext context)
    {
        var found = new List<(string Field, bool Unstorable)>();
        var endpoint = context.Features.Get<IExceptionHandlerFeature>()?.Endpoint ?? context.GetEndpoint();
        if (!TakesJson(endpoint) || endpoint!.Metadata.GetMetadata<IAcceptsMetadata>()!.RequestType is not { } bodyType
            || !context.Request.Body.CanSeek || context.Request.Body.Length > MaxLength)
        {
            return found;
        }

        var options = context.RequestServices.GetRequiredService<IOptions<HttpJsonOptions>>().Value.SerializerOptions;
        try
        {
            context.Request.Body.Position = 0;
            using var document = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
            Walk(document.RootElement, bodyType, "", options, found, depth: 0);
        }
        catch (JsonException)
        {
            // Not well-formed after the first mistyped value: that one is all that can be named.
        }
        catch (IOException)
        {
            // The client went away: there is no one to name them to.
        }

        return found;
    }

    /// <summary>A body larger than this is not read a second time (the services' bodies are small JSON documents).</summary>
    private const long MaxLength = 64 * 1024;

    private static void Walk(JsonElement element, Type type, string path, JsonSerializerOptions options, List<(string, bool)> found, int depth)
    {
        var target = Nullable.GetUnderlyingType(type) ?? type;
        if (depth < 16 && element.ValueKind == JsonValueKind.Object && IsRecord(target))
        {
            var properties = target.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.GetIndexParameters().Length == 0).ToList();
            foreach (var member in element.EnumerateObject())
            {
                var property = properties.FirstOrDefault(p => string.Equals(
                    p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name ?? options.PropertyNamingPolicy?.ConvertName(p.Name) ?? p.Name, member.Name,
                    options.PropertyNameCaseInsensitive ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal));
                if (property is not null)
                {
                    Walk(member.Value, property.PropertyType, path.Length == 0 ? member.Name : $"{path}.{member.Name}", options, found, depth + 1);
                }
            }

            return;
        }

        if (depth < 16 && element.ValueKind == JsonValueKind.Array && ElementType(target) is { } itemType)
        {
            var index = 0;
            foreach (var item in element.EnumerateArray())
            {
                Walk(item, itemType, $"{path}[{index++}]", options, found, depth + 1);
            }

            return;
        }

        try
        {
            element.Deserialize(type, options);
        }
        catch (JsonException ex)
        {
            found.Add((path, ex is UnstorableTextException));
        }
        catch (Exception ex) when (ex is NotSupportedException or InvalidOperationException or ArgumentException)
        {
            // A type the serializer cannot make on its own: the value is left for the endpoint to judge.
        }
    }

    /// <summary>A type the walk goes into: a class or struct of the API's own, not a value the serializer reads whole.</summary>
    private static bool IsRecord(Type type) =>
        !type.IsPrimitive && !type.IsEnum && type != typeof(string) && type != typeof(decimal) && type != typeof(Guid)
        && type != typeof(DateTimeOffset) && type != typeof(DateTime) && type != typeof(TimeSpan) && type != typeof(JsonElement)
        && !typeof(IEnumerable).IsAssignableFrom(type) && type.Namespace?.StartsWith("System", StringComparison.Ordinal) != true;

    private static Type? ElementType(Type type) =>
        type.IsArray ? type.GetElementType()
        : type.IsGenericType && typeof(IEnumerable).IsAssignableFrom(type) && type.GetGenericArguments() is [var only] ? only
        : null;
}
