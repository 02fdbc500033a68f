using System.Runtime.InteropServices;

namespace Shop.Hosting.Orchestration;

internal static partial class NativeMethods
{
    public const int SIGINT = 2;
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;
    public const int SIGCONT = 18;
    public const int SIGSTOP = 19;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEffectiveUserId();

    public static bool IsRoot => GetEffectiveUserId() == 0;

    public static bool Signal(int pid, int signal) => pid > 1 && Kill(pid, signal) == 0;

    /// <summary>Signals the whole process group led by <paramref name="pid"/> (children run under setsid, so pid = pgid).</summary>
    public static bool SignalGroup(int pid, int signal) => pid > 1 && Kill(-pid, signal) == 0;

    /// <summary>The kernel's start time of a process (clock ticks since boot), to tell a pid from a reused one.</summary>
    public static string? StartTime(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return fields[19];
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static bool IsAlive(int pid, string startTime) => StartTime(pid) == startTime && !IsZombie(pid);

    private static bool IsZombie(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[stat.LastIndexOf(')') + 2] is 'Z' or 'X';
        }
        catch (IOException)
        {
            return true;
        }
    }
}
