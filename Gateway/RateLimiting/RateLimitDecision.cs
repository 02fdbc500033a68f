namespace Shop.Gateway.RateLimiting;

/// <param name="Limit">The limit that was applied: the policy's, or its per-replica share when <paramref name="Degraded"/>.</param>
/// <param name="ResetAfter">Until the oldest permit in the window expires, so one more request would be allowed.</param>
/// <param name="Degraded">Decided by the in-process fallback because Redis was unavailable.</param>
public sealed record RateLimitDecision(bool Allowed, int Limit, int Remaining, TimeSpan ResetAfter, bool Degraded);
