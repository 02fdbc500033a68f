using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace Shop.ServiceDefaults.Resilience;

/// <summary>
/// One pipeline per destination authority, kept for the life of the process so circuit-breaker state
/// survives the HttpClientFactory's handler rotation.
/// </summary>
public sealed class HttpResiliencePipelines(IOptions<HttpResilienceOptions> options)
{
    internal static readonly ResiliencePropertyKey<HttpRequestMessage> RequestKey = new("Shop.Request");

    private readonly ConcurrentDictionary<string, ResiliencePipeline<HttpResponseMessage>> _pipelines = new(StringComparer.OrdinalIgnoreCase);

    public ResiliencePipeline<HttpResponseMessage> For(string authority) =>
        _pipelines.GetOrAdd(authority, _ => Build(options.Value));

    internal static ResiliencePipeline<HttpResponseMessage> Build(HttpResilienceOptions o) =>
        new ResiliencePipelineBuilder<HttpResponseMessage>()
            .AddTimeout(o.TotalRequestTimeout)
            .AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                MaxRetryAttempts = o.MaxRetryAttempts,
                Delay = o.RetryBaseDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                ShouldHandle = args => ValueTask.FromResult(
                    args.Context.Properties.TryGetValue(RequestKey, out var request)
                    && IsRetryable(request)
                    && IsTransient(args.Outcome)),
                DelayGenerator = args => ValueTask.FromResult(RetryAfter(args.Outcome.Result, o.TotalRequestTimeout)),
                OnRetry = args =>
                {
                    args.Outcome.Result?.Dispose();
                    return ValueTask.CompletedTask;
                },
            })
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions<HttpResponseMessage>
            {
                FailureRatio = o.CircuitBreakerFailureRatio,
                MinimumThroughput = o.CircuitBreakerMinimumThroughput,
                SamplingDuration = o.CircuitBreakerSamplingDuration,
                BreakDuration = o.CircuitBreakerBreakDuration,
                ShouldHandle = args => ValueTask.FromResult(IsTransient(args.Outcome)),
            })
            .AddTimeout(o.AttemptTimeout)
            .Build();

    /// <summary>
    /// Safe and idempotent methods are retried; POST and PATCH only when the caller made them idempotent
    /// with an Idempotency-Key, since the server may have acted on the first attempt.
    /// </summary>
    public static bool IsRetryable(HttpRequestMessage request)
    {
        var method = request.Method;
        if (method == HttpMethod.Get || method == HttpMethod.Head || method == HttpMethod.Options
            || method == HttpMethod.Trace || method == HttpMethod.Put || method == HttpMethod.Delete)
        {
            return true;
        }

        return (method == HttpMethod.Post || method == HttpMethod.Patch) && request.Headers.Contains("Idempotency-Key");
    }

    public static bool IsTransient(Outcome<HttpResponseMessage> outcome) => outcome switch
    {
        { Exception: HttpRequestException or TimeoutRejectedException } => true,
        { Result: { } response } => (int)response.StatusCode >= 500
            || response.StatusCode is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests,
        _ => false,
    };

    /// <summary>
    /// The answer's Retry-After when the whole call could still wait for it: one longer than the call's total (or than
    /// 30 s) would only run into the total timeout, so the retry backs off as usual instead.
    /// </summary>
    internal static TimeSpan? RetryAfter(HttpResponseMessage? response, TimeSpan total)
    {
        if (response?.Headers.RetryAfter is not { } retryAfter)
        {
            return null;
        }

        var delay = retryAfter.Delta ?? (retryAfter.Date - DateTimeOffset.UtcNow);
        return delay is { } d && d > TimeSpan.Zero && d < total && d <= TimeSpan.FromSeconds(30) ? d : null;
    }
}
