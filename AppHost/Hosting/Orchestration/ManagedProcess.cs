using System.Diagnostics;

namespace Shop.Hosting.Orchestration;

internal sealed record ProcessSpec(string FileName, IReadOnlyList<string> Arguments, string WorkingDirectory, IReadOnlyDictionary<string, string?> Environment)
{
    /// <summary>Signal for a graceful stop (PostgreSQL's fast shutdown is SIGINT).</summary>
    public int StopSignal { get; init; } = NativeMethods.SIGTERM;
}

/// <summary>
/// A child process in its own session and process group (started through setsid, which execs in place, so
/// the pid we hold is the group's), with its output captured line by line and registered with the watchdog.
/// </summary>
internal sealed class ManagedProcess : IDisposable
{
    private readonly Process _process;
    private readonly RunDirectory _runDirectory;
    private readonly int _stopSignal;

    private ManagedProcess(Process process, RunDirectory runDirectory, int stopSignal)
    {
        _process = process;
        _runDirectory = runDirectory;
        _stopSignal = stopSignal;
        Pid = process.Id;
        Exited = WaitForExitCoreAsync();
    }

    public int Pid { get; }

    /// <summary>
    /// A path that names an executable file, or a bare name found as one on PATH, as <c>execvp</c> looks it up from the
    /// process's working directory: a relative path, a relative PATH entry and an empty one (the working directory itself)
    /// are taken from there.
    /// </summary>
    internal static bool IsInstalled(string fileName, string workingDirectory, string? path = null)
    {
        static bool Executable(string file) =>
            File.Exists(file) && (File.GetUnixFileMode(file) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;

        if (fileName.Contains('/', StringComparison.Ordinal))
        {
            return Executable(Path.Combine(workingDirectory, fileName));
        }

        return (path ?? Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(':')
            .Any(directory => Executable(Path.Combine(workingDirectory, directory, fileName)));
    }

    /// <summary>Completes with the exit code when the process ends, for any reason.</summary>
    public Task<int> Exited { get; }

    public static ManagedProcess Start(ProcessSpec spec, RunDirectory runDirectory, Action<bool, string> onOutput)
    {
        // setsid would start, fail to run a program that is not there, and exit: the resource would restart for good.
        var path = spec.Environment.TryGetValue("PATH", out var ownPath) ? ownPath : null;
        if (!IsInstalled(spec.FileName, spec.WorkingDirectory, path))
        {
            throw new FileNotFoundException($"'{spec.FileName}' is not installed (not found on PATH). Run the README's set-up command.", spec.FileName);
        }

        var start = new ProcessStartInfo("setsid")
        {
            WorkingDirectory = spec.WorkingDirectory,
            UseShellExecute = false,
            // Children never share the terminal: Ctrl+C reaches only the AppHost, which stops them in order.
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(spec.FileName);
        foreach (var argument in spec.Arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in spec.Environment)
        {
            start.Environment[key] = value;
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                onOutput(false, e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                onOutput(true, e.Data);
            }
        };
        process.Start();
        runDirectory.Register(process.Id);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new ManagedProcess(process, runDirectory, spec.StopSignal);
    }

    /// <summary>Asks the process to stop, then kills its whole group if it has not gone within the grace period.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (Exited.IsCompleted)
        {
            return;
        }

        // The leader alone is asked: servers such as PostgreSQL stop their own children in order.
        NativeMethods.Signal(Pid, _stopSignal);
        if (await Task.WhenAny(Exited, Task.Delay(grace)) != Exited)
        {
            NativeMethods.SignalGroup(Pid, NativeMethods.SIGKILL);
            await Exited.WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
        }

        // Whatever the leader left behind in its group goes with it.
        NativeMethods.SignalGroup(Pid, NativeMethods.SIGKILL);
    }

    public void Kill() => NativeMethods.SignalGroup(Pid, NativeMethods.SIGKILL);

    public void Dispose() => _process.Dispose();

    private async Task<int> WaitForExitCoreAsync()
    {
        await _process.WaitForExitAsync();
        _runDirectory.Unregister(Pid);
        return _process.ExitCode;
    }
}
