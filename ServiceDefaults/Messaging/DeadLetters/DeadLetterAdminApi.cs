using System.Security.Claims;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Shop.ServiceDefaults.Security;

namespace Shop.ServiceDefaults.Messaging.DeadLetters;

public sealed record DeadLetterSummary(string MessageId, string? EventType, string? Reason, DateTimeOffset? FailedAt, int Attempts,
    string OriginalQueue, string Queue)
{
    public static DeadLetterSummary From(DeadLetter letter) =>
        new(letter.MessageId, letter.EventType, letter.Reason, letter.FailedAt, letter.Attempts, letter.OriginalQueue, letter.Queue);
}

public sealed record DeadLetterList(IReadOnlyList<DeadLetterSummary> Items);

public sealed record DeadLetterDetail(string MessageId, string? EventType, string? Reason, string? ExceptionType, DateTimeOffset? FailedAt,
    int Attempts, string OriginalQueue, string Queue, IReadOnlyDictionary<string, string?> Headers, string Body)
{
    public static DeadLetterDetail From(DeadLetter letter) => new(letter.MessageId, letter.EventType, letter.Reason, letter.ExceptionType,
        letter.FailedAt, letter.Attempts, letter.OriginalQueue, letter.Queue, letter.Headers, letter.Body);
}

public sealed record ReplayResult(int Replayed);

/// <summary>
/// Inspection and replay of this service's dead-letter queues, for a tenant's admins: each sees and replays only
/// the messages of their tenant (messages whose tenant cannot be read are left to the AppHost's tools).
/// </summary>
public static class DeadLetterAdminApi
{
    public static IEndpointRouteBuilder MapDeadLetterAdmin(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/admin/dead-letters").RequireAuthorization(ShopPolicies.Admin).WithTags("Dead letters");
        group.MapGet("/", ListDeadLetters);
        group.MapGet("/{messageId}", GetDeadLetter);
        group.MapPost("/{messageId}/replay", ReplayDeadLetter);
        group.MapPost("/replay", ReplayAll);
        return app;
    }

    public static async Task<Results<Ok<DeadLetterList>, ValidationProblem>> ListDeadLetters(ClaimsPrincipal user, DeadLetterStore store,
        int limit = 100, CancellationToken cancellationToken = default)
    {
        if (limit is < 1 or > 1000)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["limit"] = ["1–1000."] });
        }

        var letters = await store.PeekAsync(OfTenant(user), limit, cancellationToken);
        return TypedResults.Ok(new DeadLetterList(letters.Select(DeadLetterSummary.From).ToList()));
    }

    public static async Task<Results<Ok<DeadLetterDetail>, NotFound>> GetDeadLetter(string messageId, ClaimsPrincipal user, DeadLetterStore store,
        CancellationToken cancellationToken)
    {
        var tenant = OfTenant(user);
        var letters = await UntilFoundAsync(() => store.PeekAsync(l => l.MessageId == messageId && tenant(l), 1, cancellationToken),
            found => found.Count > 0, cancellationToken);
        return letters.Count == 0 ? TypedResults.NotFound() : TypedResults.Ok(DeadLetterDetail.From(letters[0]));
    }

    public static async Task<Results<Ok<ReplayResult>, NotFound>> ReplayDeadLetter(string messageId, ClaimsPrincipal user, DeadLetterStore store,
        CancellationToken cancellationToken)
    {
        var tenant = OfTenant(user);
        var replayed = await UntilFoundAsync(() => store.ReplayAsync(l => l.MessageId == messageId && tenant(l), 1, cancellationToken),
            moved => moved > 0, cancellationToken);
        return replayed == 0 ? TypedResults.NotFound() : TypedResults.Ok(new ReplayResult(replayed));
    }

    /// <summary>
    /// A read elsewhere (another replica's, the dashboard's) holds the messages it reads, unacknowledged, until it ends,
    /// and the broker puts them back a moment after that: a message asked for by id is looked for again for about a
    /// second before it is called missing. Before, a replay right after a look at the message could answer 404.
    /// </summary>
    private static async Task<T> UntilFoundAsync<T>(Func<Task<T>> find, Func<T, bool> found, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var result = await find();
            if (found(result) || attempt == 5)
            {
                return result;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken);
        }
    }

    public static async Task<Ok<ReplayResult>> ReplayAll(ClaimsPrincipal user, DeadLetterStore store, CancellationToken cancellationToken) =>
        TypedResults.Ok(new ReplayResult(await store.ReplayAsync(OfTenant(user), int.MaxValue, cancellationToken)));

    private static Func<DeadLetter, bool> OfTenant(ClaimsPrincipal user)
    {
        var tenant = user.TenantId();
        return letter => tenant is not null && letter.TenantId == tenant;
    }
}
