using System.Text;
using Microsoft.EntityFrameworkCore;

namespace Shop.ServiceDefaults.Data;

/// <summary>Maps tables, columns and keys to snake_case so the EF model matches the hand-written SQL migrations.</summary>
public static class SnakeCaseNaming
{
    public static ModelBuilder UseSnakeCaseNames(this ModelBuilder modelBuilder)
    {
        foreach (var entity in modelBuilder.Model.GetEntityTypes())
        {
            if (entity.GetTableName() is { } table)
            {
                entity.SetTableName(ToSnakeCase(table));
            }

            // An owned type stored in its owner's row (OwnsOne) shares the owner's key column; leave that key alone.
            var sharesOwnerRow = entity.FindOwnership() is { } ownership && ownership.PrincipalEntityType.GetTableName() == entity.GetTableName();
            foreach (var property in entity.GetProperties())
            {
                if (!(sharesOwnerRow && property.IsPrimaryKey()))
                {
                    property.SetColumnName(ToSnakeCase(property.GetColumnName()));
                }
            }
        }

        return modelBuilder;
    }

    public static string ToSnakeCase(string name)
    {
        var builder = new StringBuilder(name.Length + 8);
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (char.IsUpper(c))
            {
                if (i > 0 && name[i - 1] != '_' && (char.IsLower(name[i - 1]) || (i + 1 < name.Length && char.IsLower(name[i + 1]))))
                {
                    builder.Append('_');
                }

                builder.Append(char.ToLowerInvariant(c));
            }
            else
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }
}
