using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;
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
    public Task CompleteAsync<T>(DbContext db, int statusCode, string? location, T body, CancellationToken cancellationToken, string? etag = null) =>
        CompleteAsync((NpgsqlConnection)db.Database.GetDbConnection(),
            (NpgsqlTransaction?)db.Database.CurrentTransaction?.GetDbTransaction()
                ?? throw new InvalidOperationException("Complete the claim inside the transaction that makes the request's changes."),
            statusCode, location, body, cancellationToken, etag);

    /// <summary>The same, in a transaction of a connection the endpoint opened itself.</summary>
    public async Task CompleteAsync<T>(NpgsqlConnection connection, NpgsqlTransaction transaction, int statusCode, string? location, T body,
        CancellationToken cancellationToken, string? etag = null)
    {
        await using var complete = new NpgsqlCommand("""
            UPDATE idempotency_keys
            SET status = 'Completed', response_status = $4, response_type = 'application/json; charset=utf-8', response_location = $5,
                response_body = $6, response_etag = $7, completed_at = now()
            WHERE scope = $1 AND key = $2 AND attempt = $3 AND status = 'InProgress'
            """, connection, transaction);
        complete.Parameters.Add(new() { Value = Scope });
        complete.Parameters.Add(new() { Value = Key });
        complete.Parameters.Add(new() { Value = Attempt });
        complete.Parameters.Add(new() { Value = statusCode });
        complete.Parameters.Add(new() { Value = (object?)location ?? DBNull.Value });
        complete.Parameters.Add(new() { Value = JsonSerializer.SerializeToUtf8Bytes(body, _json) });
        complete.Parameters.Add(new() { Value = (object?)etag ?? DBNull.Value });
        if (await complete.ExecuteNonQueryAsync(cancellationToken) != 1)
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

    /// <summary>The claim of a request that sent an Idempotency-Key to an endpoint marked with AcceptIdempotencyKey; null without one.</summary>
    public static IdempotencyClaim? IdempotencyClaimIfAny(this HttpContext context) => context.Features.Get<IdempotencyClaim>();
}
