using System.Runtime.Versioning;

// The tests start the AppHost's local processes and read /proc: Linux only, like the AppHost.
[assembly: SupportedOSPlatform("linux")]
