namespace Shop.Hosting.ApplicationModel;

/// <summary>The fluent verbs of an Aspire app model, with Aspire's names and meanings.</summary>
public static class ResourceBuilderExtensions
{
    /// <summary>Injects the connection string (<c>ConnectionStrings__{name}</c>) or service endpoints (<c>services__{name}__http__{i}</c>).</summary>
    public static IResourceBuilder<ProjectResource> WithReference(this IResourceBuilder<ProjectResource> builder, IResourceBuilder<Resource> source)
    {
        if (source.Resource is not (IResourceWithConnectionString or ProjectResource))
        {
            throw new InvalidOperationException($"'{source.Resource.Name}' cannot be referenced: it has no connection string or endpoints.");
        }

        builder.Resource.Annotations.Add(new ReferenceAnnotation(source.Resource));
        return builder;
    }

    /// <summary>Starts this resource only once the other is healthy.</summary>
    public static IResourceBuilder<T> WaitFor<T>(this IResourceBuilder<T> builder, IResourceBuilder<Resource> dependency) where T : Resource
    {
        if (ReferenceEquals(builder.Resource, dependency.Resource))
        {
            throw new InvalidOperationException($"'{builder.Resource.Name}' cannot wait for itself.");
        }

        builder.Resource.Annotations.Add(new WaitAnnotation(dependency.Resource));
        return builder;
    }

    public static IResourceBuilder<ProjectResource> WithEnvironment(this IResourceBuilder<ProjectResource> builder, string name, string value)
    {
        builder.Resource.Annotations.Add(new EnvironmentAnnotation(name, () => value));
        return builder;
    }

    public static IResourceBuilder<ProjectResource> WithEnvironment(this IResourceBuilder<ProjectResource> builder, string name, Func<string> value)
    {
        builder.Resource.Annotations.Add(new EnvironmentAnnotation(name, value));
        return builder;
    }

    public static IResourceBuilder<ProjectResource> WithReplicas(this IResourceBuilder<ProjectResource> builder, int replicas)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(replicas, 1);
        builder.Resource.Annotations.RemoveAll(a => a is ReplicaAnnotation);
        builder.Resource.Annotations.Add(new ReplicaAnnotation(replicas));
        return builder;
    }

    /// <summary>The resource is healthy when GET <paramref name="path"/> answers 2xx on every replica.</summary>
    public static IResourceBuilder<ProjectResource> WithHttpHealthCheck(this IResourceBuilder<ProjectResource> builder, string path = "/health")
    {
        builder.Resource.Annotations.RemoveAll(a => a is HealthCheckAnnotation);
        builder.Resource.Annotations.Add(new HealthCheckAnnotation(path));
        return builder;
    }

    public static IResourceBuilder<ProjectResource> WithHttpEndpoint(this IResourceBuilder<ProjectResource> builder, int? port = null, string name = "http")
    {
        var existing = builder.Resource.AnnotationsOf<EndpointAnnotation>().FirstOrDefault(e => e.Name == name);
        builder.Resource.Annotations.Remove(existing!);
        builder.Resource.Annotations.Add(new EndpointAnnotation(name, port, existing?.IsExternal ?? false));
        return builder;
    }

    /// <summary>Marks the HTTP endpoints as reachable from outside the application (the Gateway's front door).</summary>
    public static IResourceBuilder<ProjectResource> WithExternalHttpEndpoints(this IResourceBuilder<ProjectResource> builder)
    {
        var endpoints = builder.Resource.AnnotationsOf<EndpointAnnotation>().ToList();
        foreach (var endpoint in endpoints)
        {
            builder.Resource.Annotations.Remove(endpoint);
            builder.Resource.Annotations.Add(endpoint with { IsExternal = true });
        }

        return builder;
    }
}
