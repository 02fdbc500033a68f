using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Shop.ServiceDefaults.Messaging.Schemas;

/// <summary>
/// A JSON Schema (draft 2020-12) limited to the keywords event contracts need: type (one or several),
/// properties, required, additionalProperties, items, enum, minimum, maximum, minLength, maxLength, pattern,
/// format (uuid, date-time), minItems and maxItems. A schema using any other keyword is refused when parsed,
/// so a contract never silently means less than it says.
/// </summary>
public sealed partial class JsonSchema
{
    private static readonly HashSet<string> Keywords =
    [
        "type", "properties", "required", "additionalProperties", "items", "enum", "minimum", "maximum",
        "minLength", "maxLength", "pattern", "format", "minItems", "maxItems",
    ];

    private static readonly HashSet<string> Annotations = ["$schema", "$id", "$comment", "title", "description", "examples", "deprecated", "default"];

    private static readonly HashSet<string> Types = ["object", "array", "string", "integer", "number", "boolean", "null"];

    private static readonly HashSet<string> Formats = ["uuid", "date-time"];

    private readonly JsonElement _root;

    private JsonSchema(JsonElement root) => _root = root;

    /// <exception cref="FormatException">The text is not a schema this validator understands.</exception>
    public static JsonSchema Parse(string json)
    {
        JsonElement root;
        try
        {
            using var document = JsonDocument.Parse(json);
            root = document.RootElement.Clone();
        }
        catch (JsonException ex)
        {
            throw new FormatException($"The schema is not JSON: {ex.Message}", ex);
        }

        CheckSchema(root, "#");
        return new JsonSchema(root);
    }

    /// <summary>The schema's top-level <c>required</c> property names (empty when it has none).</summary>
    public IReadOnlyList<string> RequiredProperties =>
        _root.ValueKind == JsonValueKind.Object && _root.TryGetProperty("required", out var required)
            ? required.EnumerateArray().Select(r => r.GetString()!).ToList()
            : [];

    /// <summary>Every way the instance breaks the schema, each as "path: problem"; empty when it is valid.</summary>
    public IReadOnlyList<string> Validate(JsonElement instance, string path = "$")
    {
        var errors = new List<string>();
        Validate(_root, instance, path, errors);
        return errors;
    }

    private static void CheckSchema(JsonElement schema, string at)
    {
        if (schema.ValueKind is JsonValueKind.True or JsonValueKind.False)
        {
            return;
        }

        if (schema.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException($"{at}: a schema is an object or a boolean.");
        }

        foreach (var keyword in schema.EnumerateObject())
        {
            var value = keyword.Value;
            var here = $"{at}/{keyword.Name}";
            switch (keyword.Name)
            {
                case "type":
                    var names = value.ValueKind == JsonValueKind.Array ? value.EnumerateArray().ToList() : [value];
                    if (names.Count == 0 || names.Any(n => n.ValueKind != JsonValueKind.String || !Types.Contains(n.GetString()!)))
                    {
                        throw new FormatException($"{here}: unknown type.");
                    }

                    break;
                case "properties":
                    Require(value.ValueKind == JsonValueKind.Object, here, "an object of schemas");
                    foreach (var property in value.EnumerateObject())
                    {
                        CheckSchema(property.Value, $"{here}/{property.Name}");
                    }

                    break;
                case "additionalProperties" or "items":
                    CheckSchema(value, here);
                    break;
                case "required":
                    Require(value.ValueKind == JsonValueKind.Array && value.EnumerateArray().All(v => v.ValueKind == JsonValueKind.String), here, "an array of names");
                    break;
                case "enum":
                    Require(value.ValueKind == JsonValueKind.Array && value.GetArrayLength() > 0, here, "a non-empty array");
                    break;
                case "minimum" or "maximum":
                    Require(value.ValueKind == JsonValueKind.Number, here, "a number");
                    break;
                case "minLength" or "maxLength" or "minItems" or "maxItems":
                    Require(value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var count) && count >= 0, here, "a non-negative integer");
                    break;
                case "pattern":
                    Require(value.ValueKind == JsonValueKind.String, here, "a regular expression");
                    try
                    {
                        _ = new Regex(value.GetString()!, RegexOptions.None, TimeSpan.FromSeconds(1));
                    }
                    catch (ArgumentException ex)
                    {
                        throw new FormatException($"{here}: {ex.Message}", ex);
                    }

                    break;
                case "format":
                    Require(value.ValueKind == JsonValueKind.String && Formats.Contains(value.GetString()!), here, $"one of {string.Join(", ", Formats)}");
                    break;
                default:
                    if (!Annotations.Contains(keyword.Name))
                    {
                        throw new FormatException($"{here}: keyword '{keyword.Name}' is not supported (supported: {string.Join(", ", Keywords)}).");
                    }

                    break;
            }
        }
    }

    private static void Require(bool condition, string at, string what)
    {
        if (!condition)
        {
            throw new FormatException($"{at}: must be {what}.");
        }
    }

    private static void Validate(JsonElement schema, JsonElement instance, string path, List<string> errors)
    {
        if (schema.ValueKind == JsonValueKind.True)
        {
            return;
        }

        if (schema.ValueKind == JsonValueKind.False)
        {
            errors.Add($"{path}: is not allowed");
            return;
        }

        if (schema.TryGetProperty("type", out var type) && !MatchesType(type, instance))
        {
            errors.Add($"{path}: must be of type {TypeText(type)} but is {Describe(instance)}");
            return;
        }

        if (schema.TryGetProperty("enum", out var allowed) && !allowed.EnumerateArray().Any(a => JsonElement.DeepEquals(a, instance)))
        {
            errors.Add($"{path}: must be one of {allowed.GetRawText()}");
        }

        switch (instance.ValueKind)
        {
            case JsonValueKind.Object:
                ValidateObject(schema, instance, path, errors);
                break;
            case JsonValueKind.Array:
                ValidateArray(schema, instance, path, errors);
                break;
            case JsonValueKind.String:
                ValidateString(schema, instance.GetString()!, path, errors);
                break;
            case JsonValueKind.Number:
                ValidateNumber(schema, instance, path, errors);
                break;
        }
    }

    private static void ValidateObject(JsonElement schema, JsonElement instance, string path, List<string> errors)
    {
        if (schema.TryGetProperty("required", out var required))
        {
            foreach (var name in required.EnumerateArray().Select(r => r.GetString()!))
            {
                if (!instance.TryGetProperty(name, out _))
                {
                    errors.Add($"{path}: required property '{name}' is missing");
                }
            }
        }

        var hasProperties = schema.TryGetProperty("properties", out var properties);
        var hasAdditional = schema.TryGetProperty("additionalProperties", out var additional);
        foreach (var property in instance.EnumerateObject())
        {
            var propertyPath = $"{path}.{property.Name}";
            if (hasProperties && properties.TryGetProperty(property.Name, out var propertySchema))
            {
                Validate(propertySchema, property.Value, propertyPath, errors);
            }
            else if (hasAdditional)
            {
                Validate(additional, property.Value, propertyPath, errors);
            }
        }
    }

    private static void ValidateArray(JsonElement schema, JsonElement instance, string path, List<string> errors)
    {
        var length = instance.GetArrayLength();
        if (schema.TryGetProperty("minItems", out var minItems) && length < minItems.GetInt32())
        {
            errors.Add($"{path}: must have at least {minItems.GetInt32()} items but has {length}");
        }

        if (schema.TryGetProperty("maxItems", out var maxItems) && length > maxItems.GetInt32())
        {
            errors.Add($"{path}: must have at most {maxItems.GetInt32()} items but has {length}");
        }

        if (schema.TryGetProperty("items", out var items))
        {
            var index = 0;
            foreach (var item in instance.EnumerateArray())
            {
                Validate(items, item, $"{path}[{index++}]", errors);
            }
        }
    }

    private static void ValidateString(JsonElement schema, string value, string path, List<string> errors)
    {
        // JSON Schema counts characters (code points), not UTF-16 units.
        var length = value.EnumerateRunes().Count();
        if (schema.TryGetProperty("minLength", out var minLength) && length < minLength.GetInt32())
        {
            errors.Add($"{path}: must be at least {minLength.GetInt32()} characters long");
        }

        if (schema.TryGetProperty("maxLength", out var maxLength) && length > maxLength.GetInt32())
        {
            errors.Add($"{path}: must be at most {maxLength.GetInt32()} characters long");
        }

        if (schema.TryGetProperty("pattern", out var pattern) && !Regex.IsMatch(value, pattern.GetString()!, RegexOptions.None, TimeSpan.FromSeconds(1)))
        {
            errors.Add($"{path}: must match {pattern.GetString()}");
        }

        if (schema.TryGetProperty("format", out var format) && !MatchesFormat(format.GetString()!, value))
        {
            errors.Add($"{path}: must be a {format.GetString()}");
        }
    }

    private static void ValidateNumber(JsonElement schema, JsonElement instance, string path, List<string> errors)
    {
        if (schema.TryGetProperty("minimum", out var minimum) && Compare(instance, minimum) < 0)
        {
            errors.Add($"{path}: must be at least {minimum.GetRawText()}");
        }

        if (schema.TryGetProperty("maximum", out var maximum) && Compare(instance, maximum) > 0)
        {
            errors.Add($"{path}: must be at most {maximum.GetRawText()}");
        }
    }

    /// <summary>Decimal where both fit (exact for money), double otherwise.</summary>
    private static int Compare(JsonElement number, JsonElement bound) =>
        number.TryGetDecimal(out var a) && bound.TryGetDecimal(out var b) ? a.CompareTo(b) : number.GetDouble().CompareTo(bound.GetDouble());

    private static bool MatchesType(JsonElement type, JsonElement instance) => type.ValueKind == JsonValueKind.Array
        ? type.EnumerateArray().Any(t => MatchesType(t.GetString()!, instance))
        : MatchesType(type.GetString()!, instance);

    private static bool MatchesType(string type, JsonElement instance) => type switch
    {
        "object" => instance.ValueKind == JsonValueKind.Object,
        "array" => instance.ValueKind == JsonValueKind.Array,
        "string" => instance.ValueKind == JsonValueKind.String,
        "number" => instance.ValueKind == JsonValueKind.Number,
        "integer" => instance.ValueKind == JsonValueKind.Number && IsIntegral(instance),
        "boolean" => instance.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "null" => instance.ValueKind == JsonValueKind.Null,
        _ => false,
    };

    // In draft 2020-12 a number with a zero fractional part (1.0) is an integer.
    private static bool IsIntegral(JsonElement number) => number.TryGetDecimal(out var value)
        ? decimal.Truncate(value) == value
        : Math.Floor(number.GetDouble()) == number.GetDouble() && double.IsFinite(number.GetDouble());

    private static bool MatchesFormat(string format, string value) => format switch
    {
        "uuid" => Guid.TryParseExact(value, "D", out _),
        "date-time" => DateTime().IsMatch(value)
            && DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.None, out _),
        _ => true,
    };

    private static string TypeText(JsonElement type) =>
        type.ValueKind == JsonValueKind.Array ? string.Join(" or ", type.EnumerateArray().Select(t => t.GetString())) : type.GetString()!;

    private static string Describe(JsonElement instance) => instance.ValueKind switch
    {
        JsonValueKind.Number => IsIntegral(instance) ? "integer" : "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Undefined => "missing",
        _ => instance.ValueKind.ToString().ToLowerInvariant(),
    };

    // RFC 3339 date-time: a full date, 'T', a full time and a mandatory offset.
    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", RegexOptions.CultureInvariant)]
    private static partial Regex DateTime();
}
