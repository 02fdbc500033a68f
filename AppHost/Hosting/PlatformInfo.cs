using System.Runtime.Versioning;

// The orchestrator relies on Linux: setsid, setpriv, /proc and POSIX signals to process groups.
[assembly: SupportedOSPlatform("linux")]
