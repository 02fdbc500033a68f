namespace Shop.ServiceDefaults.Resilience;

/// <summary>
/// The defaults of Microsoft's standard resilience handler (Microsoft.Extensions.Http.Resilience), but for the total:
/// 20 s, not 30. A request through the Gateway that waits on this call (Orders pricing an order from the catalog) must
/// end before the Gateway's 30 s forwarding timeout, so that the client gets this service's 503 and not the Gateway's 504.
/// </summary>
public sealed class HttpResilienceOptions
{
    public TimeSpan TotalRequestTimeout { get; set; } = TimeSpan.FromSeconds(20);
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(10);
    public int MaxRetryAttempts { get; set; } = 3;
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(2);
    public double CircuitBreakerFailureRatio { get; set; } = 0.1;
    public int CircuitBreakerMinimumThroughput { get; set; } = 100;
    public TimeSpan CircuitBreakerSamplingDuration { get; set; } = TimeSpan.FromSeconds(30);
    public TimeSpan CircuitBreakerBreakDuration { get; set; } = TimeSpan.FromSeconds(5);
}
