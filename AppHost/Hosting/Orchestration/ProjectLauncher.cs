using Shop.Hosting.ApplicationModel;

namespace Shop.Hosting.Orchestration;

/// <summary>Runs a service from its build output with <c>dotnet</c> and the environment the orchestrator computed.</summary>
internal sealed class ProjectLauncher(ProjectResource resource, Func<ReplicaRuntime, IReadOnlyDictionary<string, string?>> environment) : IResourceLauncher
{
    private static readonly HttpClient Probe = new() { Timeout = TimeSpan.FromSeconds(3) };

    public TimeSpan StopGrace => TimeSpan.FromSeconds(10);

    public Task<ProcessSpec> PrepareAsync(ReplicaRuntime replica, CancellationToken cancellationToken)
    {
        var target = resource.Metadata.TargetPath;
        if (!File.Exists(target))
        {
            throw new InvalidOperationException($"'{target}' does not exist: build the solution (the AppHost build builds every service).");
        }

        return Task.FromResult(new ProcessSpec("dotnet", [target], Path.GetDirectoryName(target)!, environment(replica)));
    }

    public async Task<bool> ProbeAsync(ReplicaRuntime replica, CancellationToken cancellationToken)
    {
        try
        {
            var path = resource.HealthCheckPath ?? "/";
            using var response = await Probe.GetAsync(new Uri(replica.Endpoint!, path), cancellationToken);
            return resource.HealthCheckPath is null || response.IsSuccessStatusCode;
        }
        catch (Exception ex) when (ex is HttpRequestException || ex is TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }
}
