using System.Runtime.Versioning;

// Starts the AppHost's local processes, like the tests: Linux only.
[assembly: SupportedOSPlatform("linux")]
