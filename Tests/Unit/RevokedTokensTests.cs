using Shop.Gateway.Identity.Tokens;

namespace Shop.Tests.Unit;

public sealed class RevokedTokensTests
{
    private static readonly TimeSpan Lease = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan TokenLife = TimeSpan.FromMinutes(10);

    private readonly FakeTimeProvider _time = new();

    private RevokedTokens Revoked(int maxEntries = 100) => new(_time, Lease, maxEntries);

    [Fact]
    public void A_revocation_is_kept_past_the_tokens_expiry_for_as_long_as_validators_still_accept_the_token()
    {
        var skew = TimeSpan.FromSeconds(30);
        var now = DateTimeOffset.UnixEpoch.AddDays(1);
        var expiresAt = now + TokenLife;

        Assert.Equal(TokenLife + skew, RevokedTokens.KeepFor(expiresAt, now, skew));
        // A logout within the skew after the expiry still has a token to refuse.
        Assert.Equal(TimeSpan.FromSeconds(20), RevokedTokens.KeepFor(expiresAt, expiresAt.AddSeconds(10), skew));

        var revoked = Revoked();
        revoked.Add("a", RevokedTokens.KeepFor(expiresAt, now, skew));
        _time.Advance(TokenLife + TimeSpan.FromSeconds(29));
        revoked.Confirmed(_time.GetTimestamp());
        Assert.True(revoked.IsRevoked("a"));
    }

    [Fact]
    public void Nothing_is_answered_from_memory_before_the_channel_has_answered_a_ping()
    {
        var revoked = Revoked();
        revoked.Add("a", TokenLife);
        Assert.Null(revoked.IsRevoked("a"));
        Assert.Null(revoked.IsRevoked("b"));

        revoked.Confirmed(_time.GetTimestamp());
        Assert.True(revoked.IsRevoked("a"));
        Assert.False(revoked.IsRevoked("b"));
    }

    [Fact]
    public void Answers_hold_until_one_lease_after_the_last_answered_ping_was_sent_then_redis_decides()
    {
        var revoked = Revoked();
        var sentAt = _time.GetTimestamp();
        _time.Advance(TimeSpan.FromMilliseconds(100));
        revoked.Confirmed(sentAt);

        _time.Advance(TimeSpan.FromMilliseconds(149));
        Assert.False(revoked.IsRevoked("b"));
        _time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Null(revoked.IsRevoked("b"));

        // An answer to an older ping does not bring the lease back.
        revoked.Confirmed(sentAt);
        Assert.Null(revoked.IsRevoked("b"));
    }

    [Fact]
    public void A_revocation_is_kept_for_what_was_left_of_the_tokens_life()
    {
        var revoked = Revoked();
        revoked.Add("a", TimeSpan.FromSeconds(30));
        revoked.Add("gone", TimeSpan.Zero);

        _time.Advance(TimeSpan.FromSeconds(29));
        revoked.Confirmed(_time.GetTimestamp());
        Assert.True(revoked.IsRevoked("a"));
        Assert.False(revoked.IsRevoked("gone"));

        _time.Advance(TimeSpan.FromSeconds(1));
        revoked.Confirmed(_time.GetTimestamp());
        Assert.False(revoked.IsRevoked("a"));
    }

    [Fact]
    public void A_lost_or_new_subscription_forgets_everything_and_ends_the_lease()
    {
        var revoked = Revoked();
        revoked.Add("a", TokenLife);
        revoked.Confirmed(_time.GetTimestamp());

        revoked.Reset();

        Assert.Null(revoked.IsRevoked("a"));
        Assert.Equal(0, revoked.Count);
        revoked.Confirmed(_time.GetTimestamp());
        Assert.False(revoked.IsRevoked("a"));
    }

    [Fact]
    public void More_live_revocations_than_it_may_hold_make_every_answer_come_from_redis_until_the_next_subscription()
    {
        var revoked = Revoked(maxEntries: 2);
        revoked.Add("a", TokenLife);
        revoked.Add("b", TimeSpan.FromSeconds(1));
        _time.Advance(TimeSpan.FromSeconds(1));

        // An expired entry makes room.
        revoked.Add("c", TokenLife);
        revoked.Confirmed(_time.GetTimestamp());
        Assert.True(revoked.IsRevoked("c"));

        revoked.Add("d", TokenLife);
        Assert.Null(revoked.IsRevoked("d"));
        Assert.Null(revoked.IsRevoked("e"));

        revoked.Reset();
        revoked.Add("d", TokenLife);
        revoked.Confirmed(_time.GetTimestamp());
        Assert.True(revoked.IsRevoked("d"));
    }

    [Fact]
    public void A_lease_of_zero_turns_it_off()
    {
        var revoked = new RevokedTokens(_time, TimeSpan.Zero, 100);
        Assert.False(revoked.Enabled);
        revoked.Confirmed(_time.GetTimestamp());
        Assert.Null(revoked.IsRevoked("a"));
    }
}
