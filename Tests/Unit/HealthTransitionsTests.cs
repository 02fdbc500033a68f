using Microsoft.Extensions.Diagnostics.HealthChecks;
using Shop.ServiceDefaults.Health;

namespace Shop.Tests.Unit;

public sealed class HealthTransitionsTests
{
    [Fact]
    public void Each_check_is_logged_when_its_status_changes_and_only_leaving_healthy_is_a_warning()
    {
        var log = new RecordingLogger();
        var transitions = new HealthTransitions(log);
        var refused = new InvalidOperationException("connection refused");

        transitions.Observe(Report(("migrations", HealthStatus.Unhealthy, "Migrations have not finished.", null), ("self", HealthStatus.Healthy, null, null)));
        transitions.Observe(Report(("migrations", HealthStatus.Unhealthy, "Migrations have not finished.", null), ("self", HealthStatus.Healthy, null, null)));
        transitions.Observe(Report(("migrations", HealthStatus.Healthy, null, null), ("self", HealthStatus.Healthy, null, null)));
        transitions.Observe(Report(("db", HealthStatus.Healthy, null, null)));
        transitions.Observe(Report(("db", HealthStatus.Unhealthy, null, refused)));
        transitions.Observe(Report(("db", HealthStatus.Unhealthy, null, refused)));
        transitions.Observe(Report(("db", HealthStatus.Degraded, "slow", null)));
        transitions.Observe(Report(("db", HealthStatus.Healthy, null, null)));

        Assert.Equal(
        [
            (LogLevel.Information, "Health check migrations is Unhealthy: Migrations have not finished.", null),
            (LogLevel.Information, "Health check self is Healthy: ok", null),
            (LogLevel.Information, "Health check migrations is Healthy (was Unhealthy): ok", null),
            (LogLevel.Information, "Health check db is Healthy: ok", null),
            (LogLevel.Warning, "Health check db is Unhealthy (was Healthy): connection refused", refused),
            (LogLevel.Warning, "Health check db is Degraded (was Unhealthy): slow", null),
            (LogLevel.Information, "Health check db is Healthy (was Degraded): ok", (Exception?)null),
        ], log.Entries);
    }

    private static HealthReport Report(params (string Name, HealthStatus Status, string? Description, Exception? Exception)[] checks) =>
        new(checks.ToDictionary(c => c.Name, c => new HealthReportEntry(c.Status, c.Description, TimeSpan.Zero, c.Exception, null)), TimeSpan.Zero);

    private sealed class RecordingLogger : ILogger<HealthTransitions>
    {
        public List<(LogLevel, string, Exception?)> Entries { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Add((logLevel, formatter(state, exception), exception));
    }
}
