using System.Globalization;
using Shop.ServiceDefaults.Caching;
using StackExchange.Redis;

namespace Shop.Gateway.Identity.Tokens;

/// <summary>
/// Keeps this replica's <see cref="RevokedTokens"/> complete: on each subscription it loads the revocations already in
/// Redis, then adds every one published by any replica, and holds the lease that lets checks skip Redis.
/// </summary>
public sealed class RevocationSubscription(
    IConnectionMultiplexer redis, RevokedTokens revoked, string redisConnectionString, TimeProvider clock, ILogger<RevocationSubscription> logger)
    : LeasedSubscription(redisConnectionString, Channel, revoked.Lease, clock, logger)
{
    public const string Channel = "gateway:token-revocations";

    // One page of SCAN over the revocation keys, each with its remaining time: { cursor, key, ms, key, ms, ... }.
    private const string LoadScript = """
        local page = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', 1000)
        local out = { page[1] }
        for _, key in ipairs(page[2]) do
            out[#out + 1] = key
            out[#out + 1] = redis.call('PTTL', key)
        end
        return out
        """;

    protected override string What => "Token revocation";

    /// <summary>Messages are "&lt;token id&gt; &lt;milliseconds the revocation is kept&gt;".</summary>
    public static string Message(string tokenId, TimeSpan remaining) =>
        string.Create(CultureInfo.InvariantCulture, $"{tokenId} {(long)remaining.TotalMilliseconds}");

    protected override async Task OnSubscribedAsync(CancellationToken cancellationToken)
    {
        // Whatever was held may have missed revocations. Anything published from here on waits in the subscription; what
        // was revoked before it is in Redis (set before it was published), so loading it now misses nothing.
        revoked.Reset();
        var database = redis.GetDatabase();
        var loaded = 0;
        var cursor = "0";
        do
        {
            cancellationToken.ThrowIfCancellationRequested();
            var page = (RedisResult[])(await database.ScriptEvaluateAsync(LoadScript, [], [cursor, RedisTokenRevocationList.KeyPrefix + "*"]))!;
            cursor = (string)page[0]!;
            for (var i = 1; i + 1 < page.Length; i += 2)
            {
                var milliseconds = (long)page[i + 1];
                // -1: a key without a time to live (none is written so); honour it a day. -2: gone since the scan.
                revoked.Add(((string)page[i]!)[RedisTokenRevocationList.KeyPrefix.Length..],
                    milliseconds == -1 ? TimeSpan.FromDays(1) : TimeSpan.FromMilliseconds(milliseconds));
                loaded++;
            }
        }
        while (cursor != "0");

        Logger.LogInformation("Loaded {Count} live token revocations", loaded);
    }

    protected override void OnMessage(string payload)
    {
        var space = payload.IndexOf(' ', StringComparison.Ordinal);
        if (space > 0 && long.TryParse(payload.AsSpan(space + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var milliseconds))
        {
            revoked.Add(payload[..space], TimeSpan.FromMilliseconds(milliseconds));
        }
        else
        {
            Logger.LogWarning("Ignored a malformed token revocation");
        }
    }

    protected override void OnConfirmed(long sentAt) => revoked.Confirmed(sentAt);

    protected override void OnLost() => revoked.Reset();

    /// <summary>A publisher's wait after its revocation reached Redis.</summary>
    public Task WaitForEveryReplicaAsync() => revoked.Enabled ? WaitOneLeaseAsync() : Task.CompletedTask;
}
