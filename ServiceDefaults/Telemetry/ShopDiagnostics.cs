using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Shop.ServiceDefaults.Telemetry;

/// <summary>The ActivitySource and Meter of the project's own plumbing (messaging, outbox, migrations).</summary>
public static class ShopDiagnostics
{
    public const string SourceName = "Shop";

    public static readonly ActivitySource ActivitySource = new(SourceName);
    public static readonly Meter Meter = new(SourceName);
}
