using System.Diagnostics;
using Shop.Hosting;

namespace Shop.Benchmarks;

/// <summary>
/// The CPU time each part of the application spends while a scenario is measured, read from the processes
/// themselves (a resource's replicas and everything they started: PostgreSQL's backends, RabbitMQ's VM). Divided
/// by the requests served it gives a cost per request, which moves far less than req/s on a machine whose
/// speed changes from run to run.
/// </summary>
internal sealed class CpuMeter(DistributedApplication app)
{
    /// <summary>The resources measured, and "apphost": this process, which hosts the AppHost, its proxies and trace store.</summary>
    public static readonly string[] Parts = ["gateway", "inventory", "postgres", "redis", "messaging", "orders", "notifications", "apphost"];

    public IReadOnlyDictionary<string, TimeSpan> Sample()
    {
        var children = ChildrenByParent();
        var sample = new Dictionary<string, TimeSpan>();
        foreach (var part in Parts)
        {
            var roots = part == "apphost"
                ? [Environment.ProcessId]
                : app.ResourceNotifications.GetSnapshot(part).Replicas.Where(r => r.Pid is not null).Select(r => r.Pid!.Value).ToList();
            // The AppHost's own children are the resources themselves: only its process counts for it.
            var pids = part == "apphost" ? roots : roots.SelectMany(root => SelfAndDescendants(root, children));
            sample[part] = pids.Aggregate(TimeSpan.Zero, (total, pid) => total + CpuTime(pid));
        }

        return sample;
    }

    /// <returns>Milliseconds of CPU per request for each part between two samples.</returns>
    public static IReadOnlyDictionary<string, double> PerRequest(IReadOnlyDictionary<string, TimeSpan> before,
        IReadOnlyDictionary<string, TimeSpan> after, long requests) =>
        Parts.ToDictionary(part => part, part => requests == 0 ? 0 : Math.Max(0, (after[part] - before[part]).TotalMilliseconds) / requests);

    private static TimeSpan CpuTime(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return process.TotalProcessorTime;
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
        {
            return TimeSpan.Zero; // exited in the meantime
        }
    }

    private static IEnumerable<int> SelfAndDescendants(int root, ILookup<int, int> children)
    {
        var pending = new Stack<int>([root]);
        while (pending.TryPop(out var pid))
        {
            yield return pid;
            foreach (var child in children[pid])
            {
                pending.Push(child);
            }
        }
    }

    /// <summary>Every process's parent, from /proc/[pid]/stat (the parent follows the parenthesised command name).</summary>
    private static ILookup<int, int> ChildrenByParent()
    {
        var pairs = new List<(int Parent, int Child)>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), out var pid))
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(directory, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                pairs.Add((int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture), pid));
            }
            catch (IOException)
            {
                // exited while the list was read
            }
        }

        return pairs.ToLookup(p => p.Parent, p => p.Child);
    }
}
