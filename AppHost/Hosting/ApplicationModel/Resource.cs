namespace Shop.Hosting.ApplicationModel;

public interface IResourceAnnotation;

/// <summary>A named part of the distributed application: a backing service, a database or a project.</summary>
public abstract class Resource(string name)
{
    public string Name { get; } = ValidateName(name);

    public List<IResourceAnnotation> Annotations { get; } = [];

    public abstract string TypeName { get; }

    /// <summary>The resource whose process hosts this one (a database's server), if any.</summary>
    public virtual Resource? Parent => null;

    public IEnumerable<T> AnnotationsOf<T>() where T : IResourceAnnotation => Annotations.OfType<T>();

    private static string ValidateName(string name)
    {
        if (string.IsNullOrEmpty(name) || !name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-') || !char.IsAsciiLetter(name[0]))
        {
            throw new ArgumentException($"Resource name '{name}' must be lowercase letters, digits and '-', starting with a letter.", nameof(name));
        }

        return name;
    }
}

/// <summary>A resource others can connect to with a connection string in Aspire's format for its kind.</summary>
public interface IResourceWithConnectionString
{
    string Name { get; }

    /// <summary>Known once the AppHost has assigned ports and secrets (before anything starts).</summary>
    string? ConnectionString { get; }
}

public sealed record WaitAnnotation(Resource Resource) : IResourceAnnotation;

public sealed record ReferenceAnnotation(Resource Resource) : IResourceAnnotation;

public sealed record EnvironmentAnnotation(string Name, Func<string> Value) : IResourceAnnotation;

public sealed record ReplicaAnnotation(int Replicas) : IResourceAnnotation;

public sealed record HealthCheckAnnotation(string Path) : IResourceAnnotation;

/// <param name="Port">The stable port callers use; null lets the AppHost choose. With replicas, a proxy owns it.</param>
public sealed record EndpointAnnotation(string Name, int? Port, bool IsExternal) : IResourceAnnotation;
