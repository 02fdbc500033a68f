using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;

namespace Shop.ServiceDefaults.Errors;

/// <summary>
/// What the framework's binding failures say, in the terms of the API: the field of a body that is not the expected
/// JSON, or the parameter whose value is not of its type, listed under <c>errors</c> as validation problems are.
/// </summary>
internal static partial class BadRequestProblem
{
    public static async Task<ProblemDetails> FromAsync(BadHttpRequestException bad, HttpContext? context = null)
    {
        if (bad.InnerException is UnstorableTextException unstorable)
        {
            var problem = new HttpValidationProblemDetails
            {
                Status = StatusCodes.Status400BadRequest,
                Title = UnstorableTextException.Title,
                Detail = UnstorableTextException.Detail,
            };
            if (FieldOf(unstorable.Path) is { } field)
            {
                problem.Errors[field] = ["May not contain the NUL character (U+0000)."];
                await AddMistypedAsync(problem, context);
            }

            return problem;
        }

        if (bad.InnerException is JsonException json)
        {
            // The reader's own failure (the text is not JSON) comes wrapped; a value of the wrong type does not.
            var field = json.InnerException is JsonException ? null : FieldOf(json.Path);
            var where = json.LineNumber is { } line && json.BytePositionInLine is { } position
                ? $" (line {line + 1}, byte {position + 1})"
                : "";
            var problem = new HttpValidationProblemDetails
            {
                Status = bad.StatusCode,
                Title = "The request body is not the JSON this endpoint expects.",
                Detail = field is null
                    ? $"The body is not well-formed JSON or not an object of the expected shape{where}."
                    : $"The value of '{field}' is not valid there{where}.",
            };
            if (field is not null)
            {
                problem.Errors[field] = ["Not a valid value of this field's type."];
                await AddMistypedAsync(problem, context);
                if (problem.Errors.Count > 1)
                {
                    problem.Detail = $"{problem.Errors.Count} values are not valid there; the first, '{field}'{where}.";
                }
            }

            return problem;
        }

        if (FailedBinding().Match(bad.Message) is { Success: true } binding)
        {
            // The framework stops at the first value that does not parse; the others are found here, so that one answer
            // names every parameter the client has to correct. Its message names the handler's parameter, which a FromQuery
            // or FromRoute attribute may name otherwise in the request.
            var failed = context is null ? [] : UnparseableParameters(context);
            var first = binding.Groups["name"].Value;
            if (!failed.Any(parameter => parameter.Parameter == first))
            {
                failed.Insert(0, (first, first, binding.Groups["value"].Value));
            }

            var problem = new HttpValidationProblemDetails
            {
                Status = bad.StatusCode,
                Title = failed.Count == 1 ? "A parameter has a value that is not valid." : "Parameters have values that are not valid.",
                Detail = string.Join(" ", failed.Select(parameter => $"'{Shortened(parameter.Value)}' is not a valid value of '{parameter.Name}'.")),
            };
            foreach (var parameter in failed)
            {
                problem.Errors[parameter.Name] = ["Not a valid value of this parameter's type."];
            }

            return problem;
        }

        var required = MissingParameter().Match(bad.Message);
        if (MissingBody().IsMatch(bad.Message) || required.Success && required.Groups["source"].Value == "body")
        {
            return new ProblemDetails { Status = bad.StatusCode, Title = "A request body is required.", Detail = "Send the JSON this endpoint expects." };
        }

        if (required.Success)
        {
            var name = required.Groups["name"].Value;
            var problem = new HttpValidationProblemDetails
            {
                Status = bad.StatusCode,
                Title = "A required parameter is missing.",
                Detail = $"'{name}' is required.",
            };
            problem.Errors[name] = ["Required."];
            return problem;
        }

        return new ProblemDetails { Status = bad.StatusCode, Title = "The request is malformed.", Detail = bad.Message };
    }

    /// <summary>The reader stopped at the first value it could not take; the body, read again, names the others.</summary>
    private static async Task AddMistypedAsync(HttpValidationProblemDetails problem, HttpContext? context)
    {
        foreach (var (field, hasNul) in context is null ? [] : await MistypedBodyFields.FindAsync(context))
        {
            problem.Errors.TryAdd(field, [hasNul ? "May not contain the NUL character (U+0000)." : "Not a valid value of this field's type."]);
        }
    }

    /// <summary>
    /// The handler's route and query parameters, in its order, whose value is given (empty included) and does not parse as the
    /// parameter's type the way the framework parses it (a <c>TryParse</c> with the invariant culture). Headers, bodies
    /// and services are not looked at; text always parses.
    /// </summary>
    /// <returns>Each such parameter by its name in the handler and the name the request gives it, with its value.</returns>
    internal static List<(string Parameter, string Name, string Value)> UnparseableParameters(HttpContext context)
    {
        var failed = new List<(string Parameter, string Name, string Value)>();
        // The exception handler clears the endpoint and route values before it runs, and keeps them in its feature.
        var handled = context.Features.Get<IExceptionHandlerFeature>();
        var routeValues = handled?.RouteValues ?? context.Request.RouteValues;
        if ((handled?.Endpoint ?? context.GetEndpoint()) is not RouteEndpoint endpoint || endpoint.Metadata.GetMetadata<MethodInfo>() is not { } handler)
        {
            return failed;
        }

        foreach (var parameter in handler.GetParameters())
        {
            var type = Nullable.GetUnderlyingType(parameter.ParameterType) ?? parameter.ParameterType;
            var attributes = parameter.GetCustomAttributes(inherit: true);
            // A type with its own BindAsync binds itself from the whole request.
            if (parameter.Name is null || type == typeof(string) || type.GetMethods(BindingFlags.Public | BindingFlags.Static).Any(method => method.Name == "BindAsync")
                || attributes.Any(a => a is IFromBodyMetadata or IFromServiceMetadata or IFromHeaderMetadata or IFromFormMetadata))
            {
                continue;
            }

            var fromQuery = attributes.OfType<IFromQueryMetadata>().FirstOrDefault();
            var fromRoute = attributes.OfType<IFromRouteMetadata>().FirstOrDefault();
            var name = fromQuery?.Name ?? fromRoute?.Name ?? parameter.Name;
            string? value = fromRoute is not null || fromQuery is null && endpoint.RoutePattern.GetParameter(name) is not null
                ? routeValues?[name] as string
                : context.Request.Query[name];
            try
            {
                if (value is not null && Parses(type, value) == false)
                {
                    failed.Add((parameter.Name, name, value));
                }
            }
            catch (Exception ex) when (ex is AmbiguousMatchException or TargetInvocationException)
            {
                // A type's own parser that cannot be told apart or that throws: the parameter is left for the framework to name.
            }
        }

        return failed;
    }

    /// <returns>Whether the value parses as the type; null for a type the framework does not parse from text.</returns>
    private static bool? Parses(Type type, string value)
    {
        if (type.IsEnum)
        {
            return Enum.TryParse(type, value, ignoreCase: false, out _);
        }

        const BindingFlags PublicStatic = BindingFlags.Public | BindingFlags.Static;
        if (type.GetMethod("TryParse", PublicStatic, [typeof(string), typeof(IFormatProvider), type.MakeByRefType()]) is { ReturnType: var withCulture } parse
            && withCulture == typeof(bool))
        {
            return (bool)parse.Invoke(null, [value, CultureInfo.InvariantCulture, null])!;
        }

        if (type.GetMethod("TryParse", PublicStatic, [typeof(string), type.MakeByRefType()]) is { ReturnType: var plain } parseWithout && plain == typeof(bool))
        {
            return (bool)parseWithout.Invoke(null, [value, null])!;
        }

        return null;
    }

    private static string Shortened(string value) => value.Length <= 64 ? value : string.Concat(value.AsSpan(0, 64), "…");

    /// <summary>A field of the body by its JSON path (<c>$.items[0].quantity</c> is <c>items[0].quantity</c>); null for the whole body.</summary>
    internal static string? FieldOf(string? path) =>
        path is null || !path.StartsWith("$.", StringComparison.Ordinal) || path.Length == 2 ? null : path[2..];

    // The framework's messages for a parameter left out: Required parameter "int page" was not provided from query string.
    // A body left out is either that, from body, or the message of an implicit body.
    [GeneratedRegex("""^Required parameter "(?:[^"]* )?(?<name>[^" ]+)" was not provided from (?<source>.+)\.$""", RegexOptions.Singleline)]
    private static partial Regex MissingParameter();

    [GeneratedRegex("""^Implicit body inferred for parameter "[^"]*" but no body was provided""")]
    private static partial Regex MissingBody();

    // The framework's message for a route or query value that does not parse: Failed to bind parameter "int page" from "abc".
    [GeneratedRegex("""^Failed to bind parameter "(?:[^"]* )?(?<name>[^" ]+)" from "(?<value>.*)"\.$""", RegexOptions.Singleline)]
    private static partial Regex FailedBinding();
}
