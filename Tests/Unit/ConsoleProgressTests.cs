using Shop.Hosting;
using Shop.Hosting.ApplicationModel;
using Shop.Hosting.Orchestration;

namespace Shop.Tests.Unit;

public sealed class ConsoleProgressTests
{
    [Fact]
    public void A_replica_that_failed_to_start_is_shown_with_its_own_last_line_not_another_replicas()
    {
        var runtime = new ResourceRuntime(new RedisResource("cache"));
        runtime.Replicas.Add(new ReplicaRuntime(runtime, 0, 0) { State = ResourceState.Running });
        runtime.Replicas.Add(new ReplicaRuntime(runtime, 1, 0) { State = ResourceState.Starting });
        var notifications = new ResourceNotificationService([runtime]);
        using var console = new StringWriter();
        using var progress = new ConsoleProgress(console, notifications, [runtime.Resource]);

        runtime.Logs.Add(new LogLine(DateTimeOffset.UtcNow, 1, true, "'redis-server' is not installed (not found on PATH)"));
        runtime.Logs.Add(new LogLine(DateTimeOffset.UtcNow, 0, false, "Ready to accept connections"));
        notifications.Update(runtime.Replicas[1], r => r.State = ResourceState.FailedToStart);

        var line = Assert.Single(console.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.EndsWith("FailedToStart: 'redis-server' is not installed (not found on PATH)", line.TrimEnd());
    }
}
