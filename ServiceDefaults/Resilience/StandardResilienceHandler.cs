using Polly;

namespace Shop.ServiceDefaults.Resilience;

/// <summary>
/// A DelegatingHandler around a Polly.Core pipeline: total timeout, retry with exponential backoff and
/// jitter, circuit breaker, attempt timeout (the order of Microsoft's standard resilience handler).
/// </summary>
public sealed class StandardResilienceHandler(HttpResiliencePipelines pipelines) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var pipeline = pipelines.For(request.RequestUri?.Authority ?? string.Empty);
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(HttpResiliencePipelines.RequestKey, request);
        try
        {
            return await pipeline.ExecuteAsync(
                static (ctx, state) => new ValueTask<HttpResponseMessage>(state.handler.SendCore(state.request, ctx.CancellationToken)),
                context,
                (handler: this, request));
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private Task<HttpResponseMessage> SendCore(HttpRequestMessage request, CancellationToken cancellationToken) =>
        base.SendAsync(request, cancellationToken);
}
