using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Shop.ServiceDefaults.Errors;

namespace Shop.ServiceDefaults.Idempotency;

/// <summary>
/// One attempt's hold on an Idempotency-Key while its request runs. An endpoint with side effects completes it inside
/// the transaction that makes them: the effects and the response a retry will get then commit together, or neither
/// does. A claim that a retry took over (the lease ran out) can no longer be completed, so its transaction rolls back.
/// </summary>
public sealed class IdempotencyClaim
{
    private readonly JsonSerializerOptions _json;

    internal IdempotencyClaim(string scope, string key, Guid attempt, JsonSerializerOptions json)
    {
        Scope = scope;
        Key = key;
        Attempt = attempt;
        _json = json;
    }

    internal string Scope { get; }

    internal string Key { get; }

    internal Guid Attempt { get; }

    /// <summary>True once the response is stored with the endpoint's own transaction.</summary>
    internal bool Completed { get; private set; }

    /// <summary>
    /// Stores the response (serialized as the endpoint will write it) in <paramref name="db"/>'s current transaction.
    /// Throws a 409 <see cref="DomainException"/> if a retry has taken the key over.
    /// </summary>
    public async Task CompleteAsync<T>(DbContext db, int statusCode, string? location, T body, CancellationToken cancellationToken)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(body, _json);
        var contentType = "application/json; charset=utf-8";
        var updated = await db.Database.ExecuteSqlInterpolatedAsync($"""
            UPDATE idempotency_keys
            SET status = 'Completed', response_status = {statusCode}, response_type = {contentType}, response_location = {location},
                response_body = {bytes}, completed_at = now()
            WHERE scope = {Scope} AND key = {Key} AND attempt = {Attempt} AND status = 'InProgress'
            """, cancellationToken);
        if (updated != 1)
        {
            throw new DomainException("Request superseded.",
                "This request ran past its Idempotency-Key's lease and a retry took the key over; the retry's outcome is the one kept.");
        }

        Completed = true;
    }
}

public static class IdempotencyClaimExtensions
{
    /// <summary>The request's claim on its Idempotency-Key; only endpoints marked with RequireIdempotencyKey have one.</summary>
    public static IdempotencyClaim IdempotencyClaim(this HttpContext context) =>
        context.Features.Get<IdempotencyClaim>()
        ?? throw new InvalidOperationException("This endpoint does not require an Idempotency-Key, or UseIdempotency is missing.");
}
