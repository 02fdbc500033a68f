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
    /// <summary>
    /// Also the work's correlation id and trace, for the transaction: the events the database writes itself (the stock
    /// level triggers of migration 0003) read them, so that an admin's write-off and the stock_depleted it raises share
    /// one trace. Empty when there are none; the triggers read empty as none.
    /// </summary>
    private const string EnterSql = """
        SELECT set_config('role', 'inventory_app', true), set_config('app.tenant_id', $1, true),
               set_config('app.correlation_id', $2, true), set_config('app.traceparent', $3, true)
        """;

    /// <summary>
    /// The statement that enters the tenant's scope, to put first in a batch: the statements of one batch share one
    /// transaction, an implicit one when none is open.
    /// </summary>
    public static NpgsqlBatchCommand Command(string tenant)
    {
        var command = new NpgsqlBatchCommand(EnterSql);
        AddParameters(command.Parameters, tenant);
        return command;
    }

    /// <summary>Enters the tenant's scope for the rest of an open transaction.</summary>
    public static async Task EnterAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string tenant, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(EnterSql, connection, transaction);
        AddParameters(command.Parameters, tenant);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static void AddParameters(NpgsqlParameterCollection parameters, string tenant)
    {
        var activity = System.Diagnostics.Activity.Current;
        parameters.Add(new() { Value = tenant });
        parameters.Add(new() { Value = Shop.ServiceDefaults.Correlation.CorrelationContext.Current ?? "" });
        parameters.Add(new() { Value = activity is { IdFormat: System.Diagnostics.ActivityIdFormat.W3C } ? activity.Id! : "" });
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
