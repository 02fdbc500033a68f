using System.Diagnostics;

namespace Shop.Hosting.Orchestration;

/// <summary>
/// The private folder of one AppHost run (data of every backing service, logs, the pid list) and the
/// watchdog that cleans up if the AppHost dies without stopping what it started (kill -9).
/// </summary>
internal sealed class RunDirectory : IDisposable
{
    /// <summary>
    /// A run's folder and the folders in it are its user's alone: they hold PostgreSQL's socket, RabbitMQ's
    /// configuration with its password, and every server's data.
    /// </summary>
    public const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private const string PidsFile = "pids";
    private readonly Dictionary<int, string> _pids = [];
    private Process? _watchdog;

    public RunDirectory()
    {
        // mkdtemp(3) in the temporary folder: made new under a name nobody could guess or take first, and its user's
        // alone (0700) from the start. (A shared parent of run folders could be made first by another user, or
        // replaced by a link, who could then put a folder of theirs where the run writes its passwords.)
        var folder = Directory.CreateTempSubdirectory(FolderPrefix);
        Path = folder.FullName;
        Id = $"{Environment.ProcessId}-{folder.Name[FolderPrefix.Length..]}";
    }

    /// <summary>The start of every run folder's name, in the temporary folder.</summary>
    public const string FolderPrefix = "shop-apphost-";

    public string Id { get; }

    public string Path { get; }

    public string Combine(string name) => Directory.CreateDirectory(System.IO.Path.Combine(Path, name), Private).FullName;

    public void Register(int pid)
    {
        lock (_pids)
        {
            _pids[pid] = NativeMethods.StartTime(pid) ?? "";
            WritePids();
        }
    }

    public void Unregister(int pid)
    {
        lock (_pids)
        {
            _pids.Remove(pid);
            WritePids();
        }
    }

    /// <summary>
    /// Starts a small shell watchdog in its own session: once the AppHost's pid is gone (or reused), it sends
    /// SIGTERM to every registered process group, SIGKILL to what is left after 5 s, and removes the folder.
    /// Parent-death signals are not used because .NET forks from pool threads (see DEPENDENCIES.md).
    /// </summary>
    public void StartWatchdog() => StartWatchdog(Environment.ProcessId);

    /// <summary>The watchdog of a run whose AppHost is <paramref name="parent"/> (tests stand in another process).</summary>
    internal void StartWatchdog(int parent)
    {
        var script = System.IO.Path.Combine(Path, "watchdog.sh");
        File.WriteAllText(script, WatchdogScript);
        var start = new ProcessStartInfo("setsid")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in new[] { "bash", script, parent.ToString(System.Globalization.CultureInfo.InvariantCulture), NativeMethods.StartTime(parent) ?? "", Path })
        {
            start.ArgumentList.Add(arg);
        }

        _watchdog = Process.Start(start);
    }

    public void Dispose()
    {
        if (_watchdog is { HasExited: false } watchdog)
        {
            NativeMethods.SignalGroup(watchdog.Id, NativeMethods.SIGKILL);
        }

        _watchdog?.Dispose();
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
        catch (IOException)
        {
            // A process of ours may still be closing a file in there; one more try after it has gone.
            Thread.Sleep(500);
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private void WritePids()
    {
        var temp = System.IO.Path.Combine(Path, PidsFile + ".tmp");
        File.WriteAllLines(temp, _pids.Select(p => $"{p.Key} {p.Value}"));
        File.Move(temp, System.IO.Path.Combine(Path, PidsFile), overwrite: true);
    }

    private const string WatchdogScript = """
        #!/usr/bin/env bash
        # Usage: watchdog.sh <apphost pid> <apphost start time> <run dir>
        parent=$1; parent_start=$2; dir=$3
        # Alive: the pid has the recorded start time and has not ended; a zombie (ended, not yet reaped) is gone.
        alive() {
          local s expected=$2; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; set -- $s
          [ "$1" != Z ] && [ "$1" != X ] && [ "${20}" = "$expected" ]
        }
        signal_all() {
          [ -f "$dir/pids" ] || return 0
          while read -r pid start; do
            if [ -n "$pid" ] && alive "$pid" "$start"; then kill "-$1" -- "-$pid" 2>/dev/null || kill "-$1" "$pid" 2>/dev/null; fi
          done < "$dir/pids"
        }
        any_alive() {
          [ -f "$dir/pids" ] || return 1
          while read -r pid start; do
            if [ -n "$pid" ] && alive "$pid" "$start"; then return 0; fi
          done < "$dir/pids"
          return 1
        }
        while alive "$parent" "$parent_start"; do sleep 1; done
        signal_all TERM
        for _ in 1 2 3 4 5 6 7 8 9 10; do any_alive || break; sleep 0.5; done
        signal_all KILL
        sleep 0.5
        # A process that was still finishing a write when it was killed can add a file while rm runs; try again.
        for _ in 1 2 3 4 5 6 7 8 9 10; do rm -rf "$dir" 2>/dev/null; [ -e "$dir" ] || break; sleep 0.5; done
        """;
}
