using System.Diagnostics;
using Shop.Hosting.ApplicationModel;
using Shop.Hosting.Orchestration;

namespace Shop.Hosting;

/// <summary>Prints one line whenever a resource's state or health changes while the application starts.</summary>
internal sealed class ConsoleProgress : IDisposable
{
    private readonly TextWriter _console;
    private readonly ResourceNotificationService _notifications;
    private readonly Dictionary<string, (ResourceState, HealthState)> _last = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly int _width;

    public ConsoleProgress(TextWriter console, ResourceNotificationService notifications, IReadOnlyList<Resource> resources)
    {
        _console = console;
        _notifications = notifications;
        _width = resources.Max(r => r.Name.Length) + 2;
        _notifications.Changed += OnChanged;
    }

    public void Dispose() => _notifications.Changed -= OnChanged;

    private void OnChanged(ResourceSnapshot snapshot)
    {
        lock (_last)
        {
            var current = (snapshot.State, snapshot.Health);
            if (_last.TryGetValue(snapshot.Name, out var previous) && previous == current)
            {
                return;
            }

            _last[snapshot.Name] = current;
            var waiting = snapshot.State == ResourceState.Waiting ? $" for {string.Join(", ", snapshot.WaitsFor)}" : "";
            var health = snapshot.Health == HealthState.Unknown ? "" : $" ({snapshot.Health.ToString().ToLowerInvariant()})";
            var reason = snapshot.State == ResourceState.FailedToStart && FailureReason(snapshot) is { } text ? $": {text}" : "";
            _console.WriteLine($"[{_clock.Elapsed.TotalSeconds,6:F1}s] {snapshot.Name.PadRight(_width)}{snapshot.State}{waiting}{health}{reason}");
        }
    }

    /// <summary>
    /// Why it could not start (a program that is not installed): the last line that a replica which failed to start
    /// logged, not the last line of the resource, which another replica still running may have written since.
    /// </summary>
    private string? FailureReason(ResourceSnapshot snapshot)
    {
        var logs = _notifications.Find(snapshot.Name).Logs;
        var failed = snapshot.Replicas.FirstOrDefault(r => r.State == ResourceState.FailedToStart);
        return (failed is null ? logs.Tail(1) : logs.Tail(1, failed.Index)) is [var last] ? last.Text : null;
    }
}
