using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;

namespace Shop.ServiceDefaults.Errors;

/// <summary>
/// What the framework's binding failures say, in the terms of the API: the field of a body that is not the expected
/// JSON, or the parameter whose value is not of its type, listed under <c>errors</c> as validation problems are.
/// </summary>
internal static partial class BadRequestProblem
{
    public static ProblemDetails From(BadHttpRequestException bad)
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
            }

            return problem;
        }

        if (FailedBinding().Match(bad.Message) is { Success: true } binding)
        {
            var name = binding.Groups["name"].Value;
            var problem = new HttpValidationProblemDetails
            {
                Status = bad.StatusCode,
                Title = "A parameter has a value that is not valid.",
                Detail = $"'{Shortened(binding.Groups["value"].Value)}' is not a valid value of '{name}'.",
            };
            problem.Errors[name] = ["Not a valid value of this parameter's type."];
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
