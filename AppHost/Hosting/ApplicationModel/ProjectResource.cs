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
