namespace Shop.ServiceDefaults.Resilience;

/// <summary>The defaults of Microsoft's standard resilience handler (Microsoft.Extensions.Http.Resilience).</summary>
public sealed class HttpResilienceOptions
{
    public TimeSpan TotalRequestTimeout { get; set; } = TimeSpan.FromSeconds(30);
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(10);
    public int MaxRetryAttempts { get; set; } = 3;
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(2);
    public double CircuitBreakerFailureRatio { get; set; } = 0.1;
    public int CircuitBreakerMinimumThroughput { get; set; } = 100;
    public TimeSpan CircuitBreakerSamplingDuration { get; set; } = TimeSpan.FromSeconds(30);
    public TimeSpan CircuitBreakerBreakDuration { get; set; } = TimeSpan.FromSeconds(5);
}
