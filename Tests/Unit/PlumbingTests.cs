using Shop.ServiceDefaults.Correlation;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Errors;
using Shop.ServiceDefaults.Messaging;

namespace Shop.Tests.Unit;

public sealed class PlumbingTests
{
    [Theory]
    [InlineData("abc-123", true)]
    [InlineData("4bf92f3577b34da6a3ce929d0e0e4736", true)]
    [InlineData("", false)]
    [InlineData("has space", false)]
    [InlineData("new\nline", false)]
    [InlineData("<script>", false)]
    public void A_caller_correlation_id_is_accepted_only_when_short_and_plain(string id, bool valid)
    {
        Assert.Equal(valid, CorrelationContext.IsValid(id));
        Assert.False(CorrelationContext.IsValid(new string('a', 65)));
    }

    [Fact]
    public void A_request_correlation_is_one_log_scope_entry_that_prints_as_itself()
    {
        var scope = new CorrelationFeature("abc-123");

        Assert.Equal([new KeyValuePair<string, object>("CorrelationId", "abc-123")], scope.ToList());
        Assert.Equal(new KeyValuePair<string, object>("CorrelationId", "abc-123"), scope[0]);
        Assert.Throws<ArgumentOutOfRangeException>(() => scope[1]);
        Assert.Equal("CorrelationId:abc-123", scope.ToString());
    }

    [Theory]
    [InlineData("57P01", true, true)] // admin_shutdown: the server is stopping under the statement
    [InlineData("57P02", true, true)] // crash_shutdown
    [InlineData("57P03", true, true)] // cannot_connect_now: still starting
    [InlineData("53300", true, true)] // too_many_connections: the server refused the connection, nothing was tried
    [InlineData("08006", true, true)] // connection_failure
    [InlineData("08P01", true, true)] // protocol_violation, class 08
    [InlineData("57014", true, false)] // query_canceled: the statement timeout; the server answered
    [InlineData("40001", true, false)] // serialization_failure: transient, but an attempt was made
    [InlineData("23505", false, false)] // unique_violation: a defect if it escapes, not an outage
    [InlineData("23514", false, false)] // check_violation
    [InlineData("42P01", false, false)] // undefined_table
    public void A_database_that_goes_away_is_a_dependency_failure_and_an_outage_and_a_broken_rule_is_neither(string sqlState, bool dependency, bool outage)
    {
        var error = new Npgsql.PostgresException("message", "FATAL", "FATAL", sqlState);

        Assert.Equal(dependency, DependencyFailure.Is(error));
        Assert.Equal(dependency, DependencyFailure.Is(new Microsoft.EntityFrameworkCore.DbUpdateException("saving", error)));
        Assert.Equal(outage, DependencyFailure.IsOutage(error));
        Assert.Equal(outage, DependencyFailure.IsOutage(new Microsoft.EntityFrameworkCore.DbUpdateException("saving", error)));
    }

    [Fact]
    public void A_server_that_cannot_be_reached_is_an_outage_and_a_timeout_or_a_defect_is_not()
    {
        var refused = new Npgsql.NpgsqlException("Failed to connect", new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.ConnectionRefused));
        var timedOut = new Npgsql.NpgsqlException("Exception while reading from stream", new TimeoutException());

        Assert.True(DependencyFailure.IsOutage(refused));
        Assert.True(DependencyFailure.Is(timedOut));
        Assert.False(DependencyFailure.IsOutage(timedOut));
        Assert.True(DependencyFailure.IsOutage(new HttpRequestException("Connection refused")));
        Assert.False(DependencyFailure.Is(new InvalidOperationException("Connection is not open")));
        Assert.False(DependencyFailure.IsOutage(new InvalidOperationException("Connection is not open")));
    }

    [Fact]
    public void The_shared_messaging_migrations_are_versioned_and_checksummed()
    {
        var scripts = MigrationScript.FromAssembly(typeof(MessagingModel).Assembly, "messaging", "Shop.ServiceDefaults.Messaging.Migrations.");

        Assert.Equal([1, 2, 3], scripts.Select(s => s.Version));
        var first = scripts[0];
        Assert.Equal(1, first.Version);
        Assert.Equal("0001_outbox_inbox", first.Name);
        Assert.Contains("CREATE TABLE outbox_messages", first.Sql, StringComparison.Ordinal);
        Assert.Equal(64, first.Checksum.Length);
        Assert.NotEqual(first.Checksum, (first with { Sql = first.Sql + " " }).Checksum);
    }

    [Fact]
    public void A_script_marked_to_run_outside_a_transaction_is_cut_into_its_statements()
    {
        var script = new MigrationScript("test", 3, "0003_concurrently", """
            -- migrate: no-transaction
            DROP INDEX CONCURRENTLY IF EXISTS ix_items_code; CREATE INDEX CONCURRENTLY ix_items_code
                ON items (code); -- a note; with a semicolon
            -- done;
            """.Replace("\n", "\r\n", StringComparison.Ordinal));

        Assert.False(script.RunsInTransaction);
        Assert.Equal(
        [
            "-- migrate: no-transaction\r\nDROP INDEX CONCURRENTLY IF EXISTS ix_items_code;",
            "CREATE INDEX CONCURRENTLY ix_items_code\r\n    ON items (code);",
        ], script.Statements());
    }

    [Theory]
    [InlineData("INSERT INTO t VALUES ('a;\n-- b;\n'); SELECT 1;", "INSERT INTO t VALUES ('a;\n-- b;\n');", "SELECT 1;")]
    [InlineData("INSERT INTO t VALUES ('it''s;'), (E'\\';'); SELECT 2", "INSERT INTO t VALUES ('it''s;'), (E'\\';');", "SELECT 2")]
    [InlineData("SELECT 1 AS \"a;\"\"b\"; SELECT 2;", "SELECT 1 AS \"a;\"\"b\";", "SELECT 2;")]
    [InlineData("CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql; SELECT $1;", "CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql;", "SELECT $1;")]
    [InlineData("DO $$ BEGIN PERFORM 1; END $$; /* a; /* nested; */ still; */ SELECT 3;", "DO $$ BEGIN PERFORM 1; END $$;", "/* a; /* nested; */ still; */ SELECT 3;")]
    public void Statements_end_only_at_semicolons_outside_strings_quoted_names_bodies_and_comments(string sql, string first, string second) =>
        Assert.Equal([first, second], SqlStatements.Split(sql));

    [Theory]
    [InlineData("SELECT 'open;")]
    [InlineData("SELECT \"open;")]
    [InlineData("DO $body$ BEGIN; END $other$;")]
    [InlineData("SELECT 1; /* open")]
    public void A_script_that_never_closes_a_string_a_body_or_a_comment_is_refused(string sql) =>
        Assert.Throws<InvalidOperationException>(() => new MigrationScript("test", 4, "0004_open", sql).Statements());

    [Fact]
    public void Every_script_of_the_services_runs_in_a_transaction_unless_it_is_marked()
    {
        var scripts = MigrationScript.FromAssembly(typeof(MessagingModel).Assembly, "messaging", "Shop.ServiceDefaults.Messaging.Migrations.");

        // Only a script that builds an index without blocking writes (CONCURRENTLY, which a transaction refuses) is marked.
        Assert.All(scripts, script => Assert.Equal(!script.Sql.Contains("CONCURRENTLY", StringComparison.Ordinal), script.RunsInTransaction));
        Assert.Contains(scripts, script => !script.RunsInTransaction);
        Assert.True(new MigrationScript("test", 5, "0005_late_marker", "CREATE TABLE t (id int);\n-- migrate: no-transaction\n").RunsInTransaction);
        Assert.True(new MigrationScript("test", 6, "0006_other_marker", "-- migrate: no-transactional\nCREATE TABLE t (id int);").RunsInTransaction);
        Assert.False(new MigrationScript("test", 7, "0007_marker", "\r\n-- migrate: no-transaction\r\nCREATE INDEX CONCURRENTLY i ON t (id);").RunsInTransaction);
    }

    [Theory]
    [InlineData("Id", "id")]
    [InlineData("ProductId", "product_id")]
    [InlineData("Price_Amount", "price_amount")]
    [InlineData("HTTPStatus", "http_status")]
    [InlineData("already_snake", "already_snake")]
    public void Names_map_to_snake_case(string name, string expected)
    {
        Assert.Equal(expected, SnakeCaseNaming.ToSnakeCase(name));
    }

    [Fact]
    public void An_outbox_row_that_fails_to_publish_backs_off_but_is_never_abandoned()
    {
        var now = DateTimeOffset.UnixEpoch;
        var envelope = new EventEnvelope(Guid.NewGuid(), "order.created", 1, now, "t", "a", 1, null, null, null, default);
        var message = OutboxMessage.For("orders.events", envelope, "{}");

        var delays = new List<TimeSpan>();
        for (var i = 0; i < 15; i++)
        {
            message.MarkFailed("broker down", now);
            delays.Add(message.NextAttemptAt - now);
        }

        Assert.True(delays.Zip(delays.Skip(1)).All(p => p.Second >= p.First));
        Assert.Equal(TimeSpan.FromMinutes(1), delays[^1]);
        Assert.Null(message.SentAt);
        Assert.Equal(15, message.Attempts);
    }
}
