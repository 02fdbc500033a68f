using System.Data.Common;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Npgsql;
using Shop.ServiceDefaults.Security;

namespace Shop.ServiceDefaults.Data;

/// <summary>
/// Row-level security's second wall: every connection the service opens switches to its non-owner role (so
/// policies apply) and carries the current tenant in <c>app.tenant_id</c>, which the policies compare with.
/// Npgsql resets both when the connection goes back to the pool.
/// </summary>
public sealed class TenantConnectionInterceptor(string role) : DbConnectionInterceptor
{
    public override void ConnectionOpened(DbConnection connection, ConnectionEndEventData eventData)
    {
        using var command = CreateCommand(connection);
        command.ExecuteNonQuery();
    }

    public override async Task ConnectionOpenedAsync(DbConnection connection, ConnectionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        await using var command = CreateCommand(connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private NpgsqlCommand CreateCommand(DbConnection connection)
    {
        var command = new NpgsqlCommand("SELECT set_config('role', $1, false), set_config('app.tenant_id', $2, false)", (NpgsqlConnection)connection);
        command.Parameters.Add(new() { Value = role });
        command.Parameters.Add(new() { Value = TenantContext.Current ?? "" });
        return command;
    }
}
