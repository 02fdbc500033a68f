using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace Shop.ServiceDefaults.Health;

/// <summary>
/// Logs each health check when its status changes, instead of every probe that finds it unhealthy: the probes
/// come every second or so from the AppHost and from each Gateway replica, so a service that is starting, or
/// whose database is down, would otherwise log an error per probe per check. A check that leaves Healthy is a
/// warning (with the check's exception, if it threw); one that was never Healthy yet (a replica starting) or
/// comes back is information.
/// </summary>
internal sealed class HealthTransitions(ILogger<HealthTransitions> logger)
{
    private readonly Dictionary<string, HealthStatus> _last = [];
    private readonly HashSet<string> _everHealthy = [];

    public void Observe(HealthReport report)
    {
        foreach (var (name, entry) in report.Entries)
        {
            bool wasHealthy;
            HealthStatus? previous;
            lock (_last)
            {
                previous = _last.TryGetValue(name, out var seen) ? seen : null;
                if (previous == entry.Status)
                {
                    continue;
                }

                _last[name] = entry.Status;
                wasHealthy = _everHealthy.Contains(name);
                if (entry.Status == HealthStatus.Healthy)
                {
                    _everHealthy.Add(name);
                }
            }

            var description = entry.Description ?? entry.Exception?.Message ?? (entry.Status == HealthStatus.Healthy ? "ok" : "no description");
            if (entry.Status != HealthStatus.Healthy && wasHealthy)
            {
                logger.LogWarning(entry.Exception, "Health check {Check} is {Status} (was {Previous}): {Description}",
                    name, entry.Status, previous, description);
            }
            else
            {
                logger.LogInformation("Health check {Check} is {Status}{Was}: {Description}",
                    name, entry.Status, previous is null ? "" : $" (was {previous})", description);
            }
        }
    }
}
