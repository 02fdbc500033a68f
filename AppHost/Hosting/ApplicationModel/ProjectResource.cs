namespace Shop.Hosting.ApplicationModel;

/// <summary>What the build knows of a service project: generated as <c>Projects.&lt;Name&gt;</c> by AppHost.csproj.</summary>
public interface IProjectMetadata
{
    string ProjectPath { get; }

    /// <summary>The built assembly the AppHost starts with <c>dotnet</c>.</summary>
    string TargetPath { get; }
}

public sealed class ProjectResource(string name, IProjectMetadata metadata) : Resource(name)
{
    public IProjectMetadata Metadata { get; } = metadata;

    public override string TypeName => "Project";

    public int Replicas => AnnotationsOf<ReplicaAnnotation>().LastOrDefault()?.Replicas ?? 1;

    public string? HealthCheckPath => AnnotationsOf<HealthCheckAnnotation>().LastOrDefault()?.Path;

    public EndpointAnnotation HttpEndpoint => AnnotationsOf<EndpointAnnotation>().First(e => e.Name == "http");

    /// <summary>
    /// The variables the model gives the service (WithEnvironment, parameters, then AppHost:Environment's overrides),
    /// each as the last annotation that names it sets it: an override, added last, wins over a parameter too.
    /// <paramref name="secret"/> writes a parameter's value (the value itself to run, a reference in a manifest).
    /// </summary>
    public IReadOnlyDictionary<string, string> ModelEnvironment(Func<ParameterResource, string> secret)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var annotation in Annotations)
        {
            switch (annotation)
            {
                case EnvironmentAnnotation variable:
                    environment[variable.Name] = variable.Value();
                    break;
                case ParameterEnvironmentAnnotation parameter:
                    environment[parameter.Name] = secret(parameter.Parameter);
                    break;
            }
        }

        return environment;
    }
}

public static class ProjectResourceBuilderExtensions
{
    public static IResourceBuilder<ProjectResource> AddProject<TProject>(this IDistributedApplicationBuilder builder, string name)
        where TProject : IProjectMetadata, new()
    {
        var resource = new ProjectResource(name, new TProject());
        resource.Annotations.Add(new EndpointAnnotation("http", Port: null, IsExternal: false));
        return builder.AddResource(resource);
    }
}
