using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;
using Npgsql;
using Shop.ServiceDefaults.Security;

namespace Shop.ServiceDefaults.Idempotency;

/// <summary>Marks an endpoint as requiring an Idempotency-Key.</summary>
public sealed class IdempotentEndpointMetadata;

/// <summary>
/// Idempotency keys with Stripe's semantics, for any endpoint that opts in. Per caller (tenant and user) and key:
/// the first request runs and its response (status, type, location, body bytes) is stored; the same request again
/// gets that response replayed with <c>Idempotent-Replayed: true</c>; the same key with another request is 422; the
/// same key while the first is still running is 409. A first attempt that fails (exception or 5xx) frees the key.
/// </summary>
internal sealed class IdempotencyMiddleware(RequestDelegate next, NpgsqlDataSource dataSource, IProblemDetailsService problems,
    ILogger<IdempotencyMiddleware> logger)
{
    public const string HeaderName = "Idempotency-Key";
    public const string ReplayedHeader = "Idempotent-Replayed";

    public async Task InvokeAsync(HttpContext context)
    {
        if (context.GetEndpoint()?.Metadata.GetMetadata<IdempotentEndpointMetadata>() is null)
        {
            await next(context);
            return;
        }

        var key = context.Request.Headers[HeaderName].ToString();
        if (key.Length is 0 or > 255)
        {
            await ProblemAsync(context, 400, "Idempotency-Key is required.", "Send a unique Idempotency-Key header (at most 255 characters) with this request.");
            return;
        }

        var scope = $"{context.User.TenantId()}:{context.User.UserId()}";
        var hash = await RequestHashAsync(context.Request);
        bool claimed;
        await using (var claim = await dataSource.OpenConnectionAsync(context.RequestAborted))
        {
            claimed = await ClaimAsync(claim, scope, key, hash, context.RequestAborted);
        }

        if (claimed)
        {
            // No connection is held while the endpoint runs: it needs its own, and a pool is small.
            await RunAndStoreAsync(context, scope, key);
            return;
        }

        await using var connection = await dataSource.OpenConnectionAsync(context.RequestAborted);

        await using var select = new NpgsqlCommand("""
            SELECT request_hash, status, response_status, response_type, response_location, response_body
            FROM idempotency_keys WHERE scope = $1 AND key = $2
            """, connection);
        select.Parameters.Add(new() { Value = scope });
        select.Parameters.Add(new() { Value = key });
        await using var reader = await select.ExecuteReaderAsync(context.RequestAborted);
        if (!await reader.ReadAsync(context.RequestAborted))
        {
            // The first attempt failed and freed the key between our insert and this read: the client may retry.
            await ProblemAsync(context, 409, "Request in flight.", "A request with this Idempotency-Key just failed; retry it.");
            return;
        }

        if (reader.GetString(0) != hash)
        {
            await ProblemAsync(context, 422, "Idempotency-Key reused.", "This Idempotency-Key was used with a different request.");
            return;
        }

        if (reader.GetString(1) != "Completed")
        {
            context.Response.Headers.RetryAfter = "1";
            await ProblemAsync(context, 409, "Request in progress.", "A request with this Idempotency-Key is still being processed.");
            return;
        }

        context.Response.StatusCode = reader.GetInt32(2);
        context.Response.Headers[ReplayedHeader] = "true";
        if (!reader.IsDBNull(3))
        {
            context.Response.ContentType = reader.GetString(3);
        }

        if (!reader.IsDBNull(4))
        {
            context.Response.Headers.Location = reader.GetString(4);
        }

        var body = reader.GetFieldValue<byte[]>(5);
        await context.Response.Body.WriteAsync(body, context.RequestAborted);
    }

    private async Task RunAndStoreAsync(HttpContext context, string scope, string key)
    {
        var original = context.Response.Body;
        using var buffer = new MemoryStream();
        context.Response.Body = buffer;
        try
        {
            await next(context);
        }
        catch
        {
            await ForgetAsync(scope, key);
            throw;
        }
        finally
        {
            context.Response.Body = original;
        }

        if (context.Response.StatusCode >= 500)
        {
            await ForgetAsync(scope, key);
        }
        else
        {
            await using var connection = await dataSource.OpenConnectionAsync(CancellationToken.None);
            await using var store = new NpgsqlCommand("""
                UPDATE idempotency_keys
                SET status = 'Completed', response_status = $3, response_type = $4, response_location = $5, response_body = $6, completed_at = now()
                WHERE scope = $1 AND key = $2
                """, connection);
            store.Parameters.Add(new() { Value = scope });
            store.Parameters.Add(new() { Value = key });
            store.Parameters.Add(new() { Value = context.Response.StatusCode });
            store.Parameters.Add(new() { Value = (object?)context.Response.ContentType ?? DBNull.Value });
            var location = context.Response.Headers.Location.ToString();
            store.Parameters.Add(new() { Value = location.Length > 0 ? location : DBNull.Value });
            store.Parameters.Add(new() { Value = buffer.ToArray() });
            await store.ExecuteNonQueryAsync(CancellationToken.None);
        }

        buffer.Position = 0;
        await buffer.CopyToAsync(original, context.RequestAborted);
    }

    private static async Task<bool> ClaimAsync(NpgsqlConnection connection, string scope, string key, string hash, CancellationToken cancellationToken)
    {
        await using var insert = new NpgsqlCommand("""
            INSERT INTO idempotency_keys (scope, key, request_hash, status) VALUES ($1, $2, $3, 'InProgress')
            ON CONFLICT (scope, key) DO NOTHING
            """, connection);
        insert.Parameters.Add(new() { Value = scope });
        insert.Parameters.Add(new() { Value = key });
        insert.Parameters.Add(new() { Value = hash });
        return await insert.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    private async Task ForgetAsync(string scope, string key)
    {
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(CancellationToken.None);
            await using var delete = new NpgsqlCommand("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2", connection);
            delete.Parameters.Add(new() { Value = scope });
            delete.Parameters.Add(new() { Value = key });
            await delete.ExecuteNonQueryAsync(CancellationToken.None);
        }
        catch (NpgsqlException ex)
        {
            logger.LogError(ex, "Could not free Idempotency-Key {Key}; it stays in progress until it expires", key);
        }
    }

    private static async Task<string> RequestHashAsync(HttpRequest request)
    {
        request.EnableBuffering();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes($"{request.Method} {request.Path}{request.QueryString}\n"));
        var chunk = new byte[8192];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, request.HttpContext.RequestAborted)) > 0)
        {
            hash.AppendData(chunk, 0, read);
        }

        request.Body.Position = 0;
        return Convert.ToHexString(hash.GetHashAndReset());
    }

    private Task ProblemAsync(HttpContext context, int status, string title, string detail)
    {
        context.Response.StatusCode = status;
        return problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = new ProblemDetails { Status = status, Title = title, Detail = detail },
        }).AsTask();
    }
}
