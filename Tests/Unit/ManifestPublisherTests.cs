using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Shop.Hosting.ApplicationModel;
using Shop.Hosting.Publishing;
using Shop.Hosting.Testing;

namespace Shop.Tests.Unit;

public sealed partial class ManifestPublisherTests
{
    [Fact]
    public async Task The_manifest_describes_every_resource_with_references_that_resolve_and_no_secret_values()
    {
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Program>(cancellationToken: TestContext.Current.CancellationToken);
        var folder = Directory.CreateTempSubdirectory("manifest-");
        try
        {
            var path = Path.Combine(folder.FullName, "aspire-manifest.json");
            ManifestPublisher.Write(builder.Resources, path);
            var text = await File.ReadAllTextAsync(path, TestContext.Current.CancellationToken);
            var manifest = JsonNode.Parse(text)!.AsObject();
            var resources = manifest["resources"]!.AsObject();

            Assert.Equal(ManifestPublisher.Schema, manifest["$schema"]!.GetValue<string>());
            Assert.All(builder.Resources, r => Assert.True(resources.ContainsKey(r.Name), $"{r.Name} is missing"));
            Assert.Equal("container.v0", resources["postgres"]!["type"]!.GetValue<string>());
            Assert.Equal("value.v0", resources["ordersdb"]!["type"]!.GetValue<string>());
            Assert.Equal("project.v0", resources["orders"]!["type"]!.GetValue<string>());
            Assert.True(resources["gateway"]!["bindings"]!["http"]!["external"]!.GetValue<bool>());

            foreach (Match reference in Reference().Matches(text))
            {
                Assert.True(resources.ContainsKey(reference.Groups[1].Value), $"{reference.Value} names no resource");
            }

            foreach (var project in resources.Where(r => r.Value!["type"]!.GetValue<string>() == "project.v0"))
            {
                Assert.True(File.Exists(Path.Combine(folder.FullName, project.Value!["path"]!.GetValue<string>())), $"{project.Key}'s path does not exist");
            }

            Assert.Equal("{orders-client-secret.value}", resources["orders"]!["env"]!["Auth__Client__ClientSecret"]!.GetValue<string>());
            Assert.All(builder.Resources.OfType<ParameterResource>(), p => Assert.DoesNotContain(p.Value, text, StringComparison.Ordinal));
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [GeneratedRegex(@"\{([a-z][a-z0-9-]*)\.(?:connectionString|value|inputs|bindings)[^}]*\}")]
    private static partial Regex Reference();
}
