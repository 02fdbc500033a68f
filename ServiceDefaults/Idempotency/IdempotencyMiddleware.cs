using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Shop.ServiceDefaults.Security;

namespace Shop.ServiceDefaults.Idempotency;

/// <summary>Marks an endpoint as taking an Idempotency-Key: required (400 without one), or optional.</summary>
public sealed class IdempotentEndpointMetadata(bool required)
{
    /// <summary>When false, a request without the header runs as it would without this metadata.</summary>
    public bool Required { get; } = required;
}

/// <summary>
/// Idempotency keys with Stripe's semantics, for any endpoint that opts in. Per caller (tenant and user) and key:
/// the first request runs and its response (status, type, location, ETag, body bytes) is stored; the same request again
/// gets that response replayed with <c>Idempotent-Replayed: true</c>; the same key with another request is 422; the
/// same key while the first is still running is 409. A first attempt that fails (exception or 5xx) frees the key.
/// <para>
/// A claim is a lease: an attempt still in progress after <see cref="IdempotencyOptions.InProgressLeaseSeconds"/> is
/// presumed dead (its replica was killed, say), and a retry takes the key over. The old attempt can then neither complete
/// nor free the key, and an endpoint that completes its <see cref="IdempotencyClaim"/> inside its own transaction has
/// that transaction refused, so a takeover never doubles the effect.
/// </para>
/// </summary>
internal sealed class IdempotencyMiddleware(RequestDelegate next, NpgsqlDataSource dataSource, IProblemDetailsService problems,
    IOptions<IdempotencyOptions> options, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json, UnfreedKeys unfreed,
    ILogger<IdempotencyMiddleware> logger)
{
    public const string HeaderName = "Idempotency-Key";
    public const string ReplayedHeader = "Idempotent-Replayed";

    public async Task InvokeAsync(HttpContext context)
    {
        if (context.GetEndpoint()?.Metadata.GetMetadata<IdempotentEndpointMetadata>() is not { } idempotent)
        {
            await next(context);
            return;
        }

        var key = context.Request.Headers[HeaderName].ToString();
        if (key.Length == 0 && !idempotent.Required)
        {
            await next(context);
            return;
        }

        if (key.Length == 0)
        {
            await ProblemAsync(context, 400, "Idempotency-Key is required.", "Send a unique Idempotency-Key header (at most 255 characters) with this request.");
            return;
        }

        // Visible ASCII only: a key is logged and compared byte for byte, and a comma is how a proxy joins two headers into one.
        if (key.Length > 255 || context.Request.Headers[HeaderName].Count > 1 || key.Any(c => c is < '!' or > '~' or ','))
        {
            await ProblemAsync(context, 400, "Idempotency-Key is not valid.",
                "Send one Idempotency-Key header of 1 to 255 visible ASCII characters, without commas (a UUID, say).");
            return;
        }

        var scope = $"{context.User.TenantId()}:{context.User.UserId()}";
        var hash = await RequestHashAsync(context.Request);
        var claim = new IdempotencyClaim(scope, key, Guid.NewGuid(), json.Value.SerializerOptions);
        bool claimed;
        await using (var claiming = await dataSource.OpenConnectionAsync(context.RequestAborted))
        {
            claimed = await ClaimAsync(claiming, claim, hash, options.Value.InProgressLeaseSeconds, context.RequestAborted);
        }

        if (claimed)
        {
            // No connection is held while the endpoint runs: it needs its own, and a pool is small. The lease runs from the
            // claim's now(); this clock starts no earlier, so UnfreedKeys never drops a key its lease still holds.
            context.Features.Set(claim);
            await RunAndStoreAsync(context, claim, System.Diagnostics.Stopwatch.GetTimestamp());
            return;
        }

        await using var connection = await dataSource.OpenConnectionAsync(context.RequestAborted);

        await using var select = new NpgsqlCommand("""
            SELECT request_hash, status, response_status, response_type, response_location, response_body, response_etag
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

        if (!reader.IsDBNull(6))
        {
            context.Response.Headers.ETag = reader.GetString(6);
        }

        // An answer without a body of its own (a bare 404) got its problem details from the status-code pages further out,
        // which write only into a response nothing has started: writing the empty body would start it.
        var body = reader.GetFieldValue<byte[]>(5);
        if (body.Length > 0)
        {
            await context.Response.Body.WriteAsync(body, context.RequestAborted);
        }
    }

    private async Task RunAndStoreAsync(HttpContext context, IdempotencyClaim claim, long claimedAt)
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
            await ForgetAsync(claim, claimedAt);
            throw;
        }
        finally
        {
            context.Response.Body = original;
        }

        if (context.Response.StatusCode >= 500 || IsRefusedRequest(context.Response.StatusCode))
        {
            // Nothing ran that a retry must not repeat: the corrected request may use the same key (Stripe keeps no
            // result for a request that failed validation). A response the endpoint stored with its own change stays.
            await ForgetAsync(claim, claimedAt);
        }
        else if (!claim.Completed)
        {
            await using var connection = await dataSource.OpenConnectionAsync(CancellationToken.None);
            await using var store = new NpgsqlCommand("""
                UPDATE idempotency_keys
                SET status = 'Completed', response_status = $3, response_type = $4, response_location = $5, response_body = $6,
                    response_etag = $8, completed_at = now()
                WHERE scope = $1 AND key = $2 AND attempt = $7 AND status = 'InProgress'
                """, connection);
            store.Parameters.Add(new() { Value = claim.Scope });
            store.Parameters.Add(new() { Value = claim.Key });
            store.Parameters.Add(new() { Value = context.Response.StatusCode });
            store.Parameters.Add(new() { Value = (object?)context.Response.ContentType ?? DBNull.Value });
            var location = context.Response.Headers.Location.ToString();
            store.Parameters.Add(new() { Value = location.Length > 0 ? location : DBNull.Value });
            store.Parameters.Add(new() { Value = buffer.ToArray() });
            store.Parameters.Add(new() { Value = claim.Attempt });
            var etag = context.Response.Headers.ETag.ToString();
            store.Parameters.Add(new() { Value = etag.Length > 0 ? etag : DBNull.Value });
            if (await store.ExecuteNonQueryAsync(CancellationToken.None) == 0)
            {
                logger.LogWarning("Idempotency-Key {Key} was taken over by a retry while this request ran; its response is not stored", claim.Key);
            }
        }

        buffer.Position = 0;
        await buffer.CopyToAsync(original, context.RequestAborted);
    }

    /// <summary>
    /// Inserts the key for this attempt, or takes over a claim of the same request whose lease ran out. Two retries that
    /// race for one expired claim are serialized by the row's lock, and the second finds the lease renewed.
    /// </summary>
    private static async Task<bool> ClaimAsync(NpgsqlConnection connection, IdempotencyClaim claim, string hash, int leaseSeconds,
        CancellationToken cancellationToken)
    {
        await using var insert = new NpgsqlCommand("""
            INSERT INTO idempotency_keys (scope, key, request_hash, status, attempt, locked_at) VALUES ($1, $2, $3, 'InProgress', $4, now())
            ON CONFLICT (scope, key) DO UPDATE SET attempt = EXCLUDED.attempt, locked_at = now()
            WHERE idempotency_keys.status = 'InProgress' AND idempotency_keys.request_hash = EXCLUDED.request_hash
              AND idempotency_keys.locked_at < now() - make_interval(secs => $5)
            """, connection);
        insert.Parameters.Add(new() { Value = claim.Scope });
        insert.Parameters.Add(new() { Value = claim.Key });
        insert.Parameters.Add(new() { Value = hash });
        insert.Parameters.Add(new() { Value = claim.Attempt });
        insert.Parameters.Add(new() { Value = (double)leaseSeconds });
        return await insert.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    /// <summary>The request itself was refused (malformed, too large, of a type not accepted) before the endpoint did anything.</summary>
    private static bool IsRefusedRequest(int status) => status is StatusCodes.Status400BadRequest or StatusCodes.Status413PayloadTooLarge
        or StatusCodes.Status415UnsupportedMediaType;

    /// <summary>
    /// Frees the key for a retry, unless the attempt completed it after all or a retry has taken it over. The answer waits
    /// for it, so that a retry the answer prompts finds the key free. When it cannot be freed now (what failed the attempt
    /// often stops this too: a pool with no connection free, a database away), <see cref="UnfreedKeys"/> frees it as soon
    /// as it can. Before, it waited for its lease (60 s), and every retry in between was told "in progress" about a
    /// request that had long ended.
    /// </summary>
    private async Task ForgetAsync(IdempotencyClaim claim, long claimedAt)
    {
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(CancellationToken.None);
            await UnfreedKeys.FreeAsync(connection, [claim], CancellationToken.None);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            logger.LogWarning(ex, "Could not free Idempotency-Key {Key} at once; it is freed as soon as a connection can be had", claim.Key);
            unfreed.Add(claim, claimedAt);
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
        return problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = new ProblemDetails { Status = status, Title = title, Detail = detail },
        }).AsTask();
    }
}
