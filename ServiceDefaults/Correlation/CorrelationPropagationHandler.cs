namespace Shop.ServiceDefaults.Correlation;

/// <summary>Carries the current correlation id on outgoing HTTP calls.</summary>
public sealed class CorrelationPropagationHandler : DelegatingHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (CorrelationContext.Current is { } id && !request.Headers.Contains(CorrelationContext.HeaderName))
        {
            request.Headers.TryAddWithoutValidation(CorrelationContext.HeaderName, id);
        }

        return base.SendAsync(request, cancellationToken);
    }
}
