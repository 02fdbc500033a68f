using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;

namespace Shop.Inventory;

/// <summary>
/// Row-level security's second wall (ADR 0011). Work done for a tenant runs as <c>inventory_app</c> with the tenant in
/// <c>app.tenant_id</c>, and the policies of migration 0005 then hide and refuse every other tenant's rows. Both
/// settings last for the transaction only, so a connection goes back to the pool as it came: nothing is left on it
/// for whoever takes it next, and no reset is needed.
/// </summary>
public static class TenantScope
{
    private const string EnterSql = "SELECT set_config('role', 'inventory_app', true), set_config('app.tenant_id', $1, true)";

    /// <summary>
    /// For a transaction, which may write: also the work's correlation id and trace. The events the database writes itself
    /// (the stock level triggers of migration 0003) read them, so that an admin's write-off and the stock_depleted it
    /// raises share one trace. Empty when there are none; the triggers read empty as none. A batch (<see cref="Command"/>)
    /// only reads, and raises nothing.
    /// </summary>
    private const string EnterForWritesSql = """
        SELECT set_config('role', 'inventory_app', true), set_config('app.tenant_id', $1, true),
               set_config('app.correlation_id', $2, true), set_config('app.traceparent', $3, true)
        """;

    /// <summary>
    /// The statement that enters the tenant's scope, to put first in a batch that reads: the statements of one batch share
    /// one transaction, an implicit one when none is open.
    /// </summary>
    public static NpgsqlBatchCommand Command(string tenant)
    {
        var command = new NpgsqlBatchCommand(EnterSql);
        command.Parameters.Add(new() { Value = tenant });
        return command;
    }

    /// <summary>Enters the tenant's scope for the rest of an open transaction.</summary>
    public static async Task EnterAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string tenant, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(EnterForWritesSql, connection, transaction);
        var activity = System.Diagnostics.Activity.Current;
        command.Parameters.Add(new() { Value = tenant });
        command.Parameters.Add(new() { Value = Shop.ServiceDefaults.Correlation.CorrelationContext.Current ?? "" });
        command.Parameters.Add(new() { Value = activity is { IdFormat: System.Diagnostics.ActivityIdFormat.W3C } ? activity.Id! : "" });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Begins a transaction in the tenant's scope. Commit it to keep writes; disposing it rolls back, which is all a
    /// read needs.
    /// </summary>
    public static Task<IDbContextTransaction> BeginTenantTransactionAsync(this DatabaseFacade database, string tenant,
        CancellationToken cancellationToken) => database.BeginTenantTransactionAsync(tenant, System.Data.IsolationLevel.Unspecified, cancellationToken);

    /// <summary>As above, at <paramref name="isolation"/>: a read of several statements that must agree takes one snapshot (RepeatableRead).</summary>
    public static async Task<IDbContextTransaction> BeginTenantTransactionAsync(this DatabaseFacade database, string tenant,
        System.Data.IsolationLevel isolation, CancellationToken cancellationToken)
    {
        var transaction = await database.BeginTransactionAsync(isolation, cancellationToken);
        await EnterAsync((NpgsqlConnection)database.GetDbConnection(), (NpgsqlTransaction)transaction.GetDbTransaction(), tenant, cancellationToken);
        return transaction;
    }
}
