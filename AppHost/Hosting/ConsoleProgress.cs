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
            // Why it could not start (a program that is not installed) is the last line of its log: shown here too.
            var reason = snapshot.State == ResourceState.FailedToStart && _notifications.Find(snapshot.Name).Logs.Tail(1) is [var last]
                ? $": {last.Text}" : "";
            _console.WriteLine($"[{_clock.Elapsed.TotalSeconds,6:F1}s] {snapshot.Name.PadRight(_width)}{snapshot.State}{waiting}{health}{reason}");
        }
    }
}
