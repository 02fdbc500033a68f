using System.Security.Cryptography;

namespace Shop.Hosting.ApplicationModel;

/// <summary>
/// A value given to resources (Aspire's parameter.v0): from configuration when set, else generated for this run.
/// Secret values are never shown by the dashboard.
/// </summary>
public sealed class ParameterResource(string name, string value, bool secret, bool generated) : Resource(name)
{
    public string Value { get; } = value;

    public bool Secret { get; } = secret;

    public bool Generated { get; } = generated;

    /// <summary>When set, a generated value is printed with this label once the application is healthy (e.g. a dev password).</summary>
    public string? PrintLabel { get; internal set; }

    public override string TypeName => "Parameter";
}

public sealed record ParameterEnvironmentAnnotation(string Name, ParameterResource Parameter) : IResourceAnnotation;

public static class ParameterResourceBuilderExtensions
{
    public static IResourceBuilder<ParameterResource> AddParameter(this IDistributedApplicationBuilder builder, string name, string? value = null, bool secret = false)
    {
        var configured = value ?? builder.Configuration[$"Parameters:{name}"];
        var generated = string.IsNullOrEmpty(configured);
        var resolved = generated ? Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)).Replace('+', 'x').Replace('/', 'y') : configured!;
        return builder.AddResource(new ParameterResource(name, resolved, secret, generated));
    }

    /// <summary>Prints a generated value once everything is healthy, so a developer can use it.</summary>
    public static IResourceBuilder<ParameterResource> WithPrintedValue(this IResourceBuilder<ParameterResource> builder, string label)
    {
        builder.Resource.PrintLabel = label;
        return builder;
    }

    /// <summary>The parameter's value, by reference: a manifest writes <c>{name.value}</c>, never the value itself.</summary>
    public static IResourceBuilder<ProjectResource> WithEnvironment(this IResourceBuilder<ProjectResource> builder, string name, IResourceBuilder<ParameterResource> parameter)
    {
        builder.Resource.Annotations.Add(new ParameterEnvironmentAnnotation(name, parameter.Resource));
        return builder;
    }
}
