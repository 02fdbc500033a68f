namespace Shop.Benchmarks;

internal static class Percentiles
{
    /// <summary>The nearest-rank percentile <paramref name="p"/> (0–100) of values sorted ascending; NaN when there are none.</summary>
    public static double Of(IReadOnlyList<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];
}
