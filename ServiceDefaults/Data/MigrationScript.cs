using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;

namespace Shop.ServiceDefaults.Data;

/// <summary>One versioned, immutable SQL script. Module lets shared plumbing (messaging) version its own tables.</summary>
public sealed record MigrationScript(string Module, int Version, string Name, string Sql)
{
    /// <summary>
    /// The first line of a script that runs outside a transaction, one statement at a time: for what PostgreSQL refuses
    /// inside one, such as <c>CREATE INDEX CONCURRENTLY</c>, which builds an index without blocking the table's writes.
    /// </summary>
    public const string NoTransactionMarker = "-- migrate: no-transaction";

    public string Checksum => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(Sql.ReplaceLineEndings("\n"))));

    /// <summary>Unless its first line is <see cref="NoTransactionMarker"/>.</summary>
    public bool RunsInTransaction =>
        Sql.ReplaceLineEndings("\n").TrimStart().Split('\n', 2)[0].TrimEnd() != NoTransactionMarker;

    /// <summary>The script's statements, as PostgreSQL would end them (see <see cref="SqlStatements"/>).</summary>
    public IReadOnlyList<string> Statements()
    {
        try
        {
            return SqlStatements.Split(Sql);
        }
        catch (FormatException ex)
        {
            throw new InvalidOperationException($"Migration {Module}/{Name} cannot be cut into statements: {ex.Message}", ex);
        }
    }

    /// <summary>Reads embedded resources named <c>…Migrations.NNNN_name.sql</c> from an assembly.</summary>
    /// <param name="resourcePrefix">Only resources starting with this (one module of several in an assembly).</param>
    public static IReadOnlyList<MigrationScript> FromAssembly(Assembly assembly, string module, string? resourcePrefix = null)
    {
        const string marker = ".Migrations.";
        var scripts = new List<MigrationScript>();
        foreach (var resource in assembly.GetManifestResourceNames().Where(r => resourcePrefix is null || r.StartsWith(resourcePrefix, StringComparison.Ordinal)))
        {
            var at = resource.LastIndexOf(marker, StringComparison.Ordinal);
            if (at < 0 || !resource.EndsWith(".sql", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var fileName = resource[(at + marker.Length)..^".sql".Length];
            var digits = new string(fileName.TakeWhile(char.IsAsciiDigit).ToArray());
            if (digits.Length == 0)
            {
                throw new InvalidOperationException($"Migration '{resource}' must start with its version number (0001_name.sql).");
            }

            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream);
            scripts.Add(new MigrationScript(module, int.Parse(digits, CultureInfo.InvariantCulture), fileName, reader.ReadToEnd()));
        }

        var duplicate = scripts.GroupBy(s => s.Version).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new InvalidOperationException($"Module '{module}' has two migrations with version {duplicate.Key}.");
        }

        return scripts.OrderBy(s => s.Version).ToList();
    }
}
