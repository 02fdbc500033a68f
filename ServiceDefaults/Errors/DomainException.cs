using Microsoft.AspNetCore.Http;

namespace Shop.ServiceDefaults.Errors;

/// <summary>A broken business rule, answered as problem details with its own status code (never a 500).</summary>
public class DomainException(string title, string detail, int statusCode = StatusCodes.Status409Conflict) : Exception(detail)
{
    public string Title { get; } = title;
    public int StatusCode { get; } = statusCode;
}
