using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Shop.Hosting.ApplicationModel;

namespace Shop.Hosting;

public interface IDistributedApplicationBuilder
{
    ConfigurationManager Configuration { get; }

    string EnvironmentName { get; }

    IReadOnlyList<Resource> Resources { get; }

    IResourceBuilder<T> AddResource<T>(T resource) where T : Resource;

    DistributedApplication Build();
}

internal sealed class DistributedApplicationBuilder : IDistributedApplicationBuilder
{
    private readonly List<Resource> _resources = [];

    public DistributedApplicationBuilder(string[] args)
    {
        Configuration = new ConfigurationManager();
        Configuration.AddEnvironmentVariables("DOTNET_");
        Configuration.AddCommandLine(args);
        EnvironmentName = Configuration[HostDefaults.EnvironmentKey] ?? Environments.Production;

        var baseDirectory = AppContext.BaseDirectory;
        Configuration.SetBasePath(baseDirectory);
        Configuration.AddJsonFile("appsettings.json", optional: true);
        Configuration.AddJsonFile($"appsettings.{EnvironmentName}.json", optional: true);
        Configuration.AddEnvironmentVariables();
        Configuration.AddCommandLine(args);
    }

    public ConfigurationManager Configuration { get; }

    public string EnvironmentName { get; }

    public IReadOnlyList<Resource> Resources => _resources;

    public IResourceBuilder<T> AddResource<T>(T resource) where T : Resource
    {
        if (_resources.Any(r => r.Name == resource.Name))
        {
            throw new InvalidOperationException($"A resource named '{resource.Name}' already exists.");
        }

        _resources.Add(resource);
        return new ResourceBuilder<T>(this, resource);
    }

    public DistributedApplication Build()
    {
        if (DistributedApplication.TestingHook.Value is { } hook)
        {
            hook.Capture(this);
            throw new HostAbortedException("Captured by the testing builder.");
        }

        return BuildCore();
    }

    internal DistributedApplication BuildCore()
    {
        // AppHost:Replicas:<resource> overrides the model's WithReplicas.
        foreach (var project in _resources.OfType<ProjectResource>())
        {
            if (Configuration.GetValue<int?>($"AppHost:Replicas:{project.Name}") is { } replicas)
            {
                new ResourceBuilder<ProjectResource>(this, project).WithReplicas(replicas);
            }

            // AppHost:Environment:<resource>:<Name>=<value> adds (or overrides) a variable of that service, e.g.
            // AppHost:Environment:orders:Payments__Fake__DeclineRate=0.1 — tuning without editing Program.cs. A nested
            // key (Payments:Fake:DeclineRate, which an environment variable AppHost__Environment__orders__Payments__…
            // becomes) is the same variable.
            foreach (var (key, value) in Configuration.GetSection($"AppHost:Environment:{project.Name}").AsEnumerable(makePathsRelative: true))
            {
                if (value is not null)
                {
                    project.Annotations.Add(new EnvironmentAnnotation(key.Replace(":", "__", StringComparison.Ordinal), () => value));
                }
            }
        }

        return new DistributedApplication(this, _resources.ToList());
    }
}
