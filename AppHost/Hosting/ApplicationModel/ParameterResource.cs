using System.Security.Cryptography;

namespace Shop.Hosting.ApplicationModel;

/// <summary>
/// A value given to resources (Aspire's parameter.v0): from configuration when set, else generated for this run.
/// Secret values are never shown by the dashboard.
/// </summary>
public sealed class ParameterResource(string name, string value, bool secret, bool generated, int minLength = ParameterResource.DefaultMinLength) : Resource(name)
{
    /// <summary>The shortest value generated for a parameter that asks for nothing longer, locally and in a deployment (Aspire's).</summary>
    public const int DefaultMinLength = 22;

    public string Value { get; } = value;

    /// <summary>The shortest value that may be generated: a deployment (the manifest) generates at least this many characters.</summary>
    public int MinLength { get; } = minLength;

    public bool Secret { get; } = secret;

    public bool Generated { get; } = generated;

    /// <summary>When set, a generated value is printed with this label once the application is healthy (e.g. a dev password).</summary>
    public string? PrintLabel { get; internal set; }

    public override string TypeName => "Parameter";
}

public sealed record ParameterEnvironmentAnnotation(string Name, ParameterResource Parameter) : IResourceAnnotation;

public static class ParameterResourceBuilderExtensions
{
    /// <param name="minLength">
    /// The shortest value to generate, here and in a deployment, for a value its service refuses when shorter (a client
    /// secret: 32). A value generated here is never shorter than 32 characters.
    /// </param>
    public static IResourceBuilder<ParameterResource> AddParameter(this IDistributedApplicationBuilder builder, string name, string? value = null, bool secret = false,
        int minLength = ParameterResource.DefaultMinLength)
    {
        var configured = value ?? builder.Configuration[$"Parameters:{name}"];
        var generated = string.IsNullOrEmpty(configured);
        // Base64: four characters for every three bytes.
        var bytes = Math.Max(24, (minLength * 3 + 3) / 4);
        var resolved = generated ? Convert.ToBase64String(RandomNumberGenerator.GetBytes(bytes)).Replace('+', 'x').Replace('/', 'y') : configured!;
        return builder.AddResource(new ParameterResource(name, resolved, secret, generated, minLength));
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
