using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Shop.ServiceDefaults.Http;

/// <summary>
/// HEAD wherever GET is served, as RFC 9110 (section 9.3.2) asks of every server: the request is routed as a GET and
/// answered with the GET's status and headers. Minimal APIs map GET alone, so a HEAD used to be 405.
/// </summary>
/// <remarks>
/// The method is HEAD again once the endpoint is chosen, so that what runs after routing (logs, spans, the Gateway's
/// forwarding) sees the request as it came. Kestrel never sends a HEAD response's content: it decides from the request
/// line, not from the method the application reads.
/// </remarks>
internal static class HeadRequests
{
    /// <summary>Marks a HEAD request while it is routed as a GET.</summary>
    private sealed class RoutedAsGet
    {
        public static readonly RoutedAsGet Instance = new();
    }

    /// <summary>Routing, with HEAD requests matched as GET requests.</summary>
    public static WebApplication UseRoutingWithHead(this WebApplication app)
    {
        app.Use(static (context, next) =>
        {
            // Methods are case-sensitive (RFC 9110 9.1) and Kestrel leaves out the content only for "HEAD" itself, so
            // "head" is another method, not routed as a GET.
            if (string.Equals(context.Request.Method, HttpMethods.Head, StringComparison.Ordinal))
            {
                context.Request.Method = HttpMethods.Get;
                context.Features.Set(RoutedAsGet.Instance);
            }

            return next(context);
        });
        app.UseRouting();
        app.Use(static (context, next) =>
        {
            if (HttpMethods.IsGet(context.Request.Method) && context.Features.Get<RoutedAsGet>() is not null)
            {
                context.Request.Method = HttpMethods.Head;
            }

            return next(context);
        });
        return app;
    }
}
