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
    private readonly Dictionary<string, (HealthStatus Last, bool EverHealthy)> _checks = [];

    public void Observe(HealthReport report)
    {
        foreach (var (name, entry) in report.Entries)
        {
            HealthStatus? previous;
            bool wasHealthy;
            lock (_checks)
            {
                var known = _checks.TryGetValue(name, out var seen);
                if (known && seen.Last == entry.Status)
                {
                    continue;
                }

                previous = known ? seen.Last : null;
                wasHealthy = seen.EverHealthy;
                _checks[name] = (entry.Status, wasHealthy || entry.Status == HealthStatus.Healthy);
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
