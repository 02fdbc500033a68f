using System.Reflection;
using Microsoft.Extensions.Hosting;

namespace Shop.Hosting.Testing;

internal sealed class TestingHook(string[] arguments)
{
    public string[] Arguments { get; } = arguments;

    public DistributedApplicationBuilder? Builder { get; private set; }

    public void Capture(DistributedApplicationBuilder builder) => Builder = builder;
}

/// <summary>
/// Starts an AppHost's own app model inside a test, as Aspire.Hosting.Testing does: the AppHost's entry point
/// runs until it calls Build(), where the model is captured instead of run. Ports are random and the
/// console is quiet, so several applications can run side by side.
/// </summary>
public static class DistributedApplicationTestingBuilder
{
    private static readonly SemaphoreSlim EntryPointGate = new(1, 1);

    public static async Task<IDistributedApplicationBuilder> CreateAsync<TEntryPoint>(string[]? args = null, CancellationToken cancellationToken = default)
        where TEntryPoint : class
    {
        var entryPoint = typeof(TEntryPoint).Assembly.EntryPoint
            ?? throw new InvalidOperationException($"{typeof(TEntryPoint).Assembly.GetName().Name} has no entry point.");
        string[] testArguments =
        [
            "--environment=Development",
            "--AppHost:GatewayPort=0",
            "--AppHost:DashboardPort=0",
            "--AppHost:Quiet=true",
            .. args ?? [],
        ];

        await EntryPointGate.WaitAsync(cancellationToken);
        try
        {
            var hook = new TestingHook(testArguments);
            DistributedApplication.TestingHook.Value = hook;
            try
            {
                var result = entryPoint.Invoke(null, entryPoint.GetParameters().Length == 0 ? [] : [Array.Empty<string>()]);
                if (result is Task task)
                {
                    await task;
                }
            }
            catch (Exception ex) when (Unwrap(ex) is HostAbortedException)
            {
            }
            finally
            {
                DistributedApplication.TestingHook.Value = null;
            }

            return hook.Builder ?? throw new InvalidOperationException("The entry point did not call Build() on its DistributedApplication builder.");
        }
        finally
        {
            EntryPointGate.Release();
        }
    }

    /// <summary>Builds the captured model for real (no interception).</summary>
    public static Task<DistributedApplication> BuildAsync(this IDistributedApplicationBuilder builder) =>
        Task.FromResult(((DistributedApplicationBuilder)builder).BuildCore());

    private static Exception Unwrap(Exception exception) =>
        exception is TargetInvocationException { InnerException: { } inner } ? Unwrap(inner) : exception;
}
