using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Shop.ServiceDefaults.Data;

namespace Shop.Tests.Unit;

/// <summary>What every service's PostgreSQL data source gets unless its connection string says otherwise.</summary>
public sealed class DataSourceDefaultsTests
{
    private const string ConnectionString = "Host=127.0.0.1;Port=5432;Database=probe;Username=probe;Password=probe";

    [Fact]
    public void Without_row_level_security_connections_skip_the_pool_reset_and_plans_are_generic()
    {
        var settings = Settings(ConnectionString, rowLevelSecurityRole: null);

        Assert.True(settings.NoResetOnClose);
        Assert.Contains("plan_cache_mode=force_generic_plan", settings.Options);
        Assert.Contains("statement_timeout=15000", settings.Options);
        Assert.Equal(40, settings.MaxPoolSize);
        Assert.Equal(64, settings.MaxAutoPrepare);
        // A server that does not answer holds a statement at most 10 + 2 * 5 + 2 s, within the Gateway's 30 s (see ChaosTests).
        Assert.Equal((5, 10), (settings.Timeout, settings.CommandTimeout));
    }

    [Fact]
    public void With_row_level_security_connections_are_reset_because_they_carry_a_role_and_a_tenant()
    {
        var settings = Settings(ConnectionString, rowLevelSecurityRole: "orders_app");

        Assert.False(settings.NoResetOnClose);
        Assert.Contains("plan_cache_mode=force_generic_plan", settings.Options);
    }

    [Fact]
    public void The_connection_string_wins_over_every_default_but_generic_plans_are_kept_unless_it_chooses_a_plan_mode()
    {
        var settings = Settings($"{ConnectionString};No Reset On Close=false;Options=-c statement_timeout=1000;Maximum Pool Size=5;Max Auto Prepare=0"
            + ";Timeout=2;Command Timeout=60", rowLevelSecurityRole: null);

        Assert.False(settings.NoResetOnClose);
        Assert.Equal("-c statement_timeout=1000 -c plan_cache_mode=force_generic_plan", settings.Options);
        Assert.Equal(5, settings.MaxPoolSize);
        Assert.Equal(0, settings.MaxAutoPrepare);
        Assert.Equal((2, 60), (settings.Timeout, settings.CommandTimeout));

        // Keywords count in any case and with or without their spaces.
        var unspaced = Settings($"{ConnectionString};noresetonclose=false;MaxAutoPrepare=3", rowLevelSecurityRole: null);
        Assert.Equal((false, 3), (unspaced.NoResetOnClose, unspaced.MaxAutoPrepare));
        // Either auto-prepare setting leaves both to the connection string.
        var minUsages = Settings($"{ConnectionString};Auto Prepare Min Usages=5", rowLevelSecurityRole: null);
        Assert.Equal((0, 5), (minUsages.MaxAutoPrepare, minUsages.AutoPrepareMinUsages));

        var ownPlanMode = Settings($"{ConnectionString};Options=-c plan_cache_mode=auto", rowLevelSecurityRole: null);
        Assert.Equal("-c plan_cache_mode=auto", ownPlanMode.Options);
    }

    /// <summary>Only a maximum given in the connection string replaces the bound; a minimum alone left Npgsql's 100 per replica.</summary>
    [Theory]
    [InlineData("Minimum Pool Size=5", 40, 5)]
    [InlineData("Maximum Pool Size=12", 12, 0)]
    [InlineData("maximum pool size=12;Minimum Pool Size=2", 12, 2)]
    [InlineData("Minimum Pool Size=50", 50, 50)]
    [InlineData("MaxPoolSize=12", 12, 0)]
    public void The_pool_stays_bounded_unless_the_connection_string_names_its_own_maximum(string pool, int maximum, int minimum)
    {
        var settings = Settings($"{ConnectionString};{pool}", rowLevelSecurityRole: null);

        Assert.Equal((maximum, minimum), (settings.MaxPoolSize, settings.MinPoolSize));
    }

    /// <summary>Readiness runs on two connections of its own, with the same protections, whatever the pool's bounds.</summary>
    [Theory]
    [InlineData("")]
    [InlineData(";Minimum Pool Size=50;Maximum Pool Size=60;Application Name=shop")]
    public void The_readiness_check_has_its_own_two_connections_apart_from_the_pool(string pool)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration["ConnectionStrings:probedb"] = ConnectionString + pool;
        builder.AddNpgsqlDbContext<ProbeContext>("probedb");
        using var services = builder.Services.BuildServiceProvider();
        var requests = services.GetRequiredService<NpgsqlDataSource>();
        var health = services.GetRequiredKeyedService<NpgsqlDataSource>(NpgsqlExtensions.HealthCheckDataSourceKey("probedb"));
        var settings = new NpgsqlConnectionStringBuilder(health.ConnectionString);

        Assert.NotSame(requests, health);
        Assert.Equal((2, 0), (settings.MaxPoolSize, settings.MinPoolSize));
        Assert.Equal((5, 10), (settings.Timeout, settings.CommandTimeout));
        Assert.Contains("statement_timeout=15000", settings.Options);
        Assert.Equal(pool.Length == 0 ? $"{builder.Environment.ApplicationName} health" : "shop", settings.ApplicationName);
    }

    private static NpgsqlConnectionStringBuilder Settings(string connectionString, string? rowLevelSecurityRole)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration["ConnectionStrings:probedb"] = connectionString;
        builder.AddNpgsqlDbContext<ProbeContext>("probedb", rowLevelSecurityRole);
        using var services = builder.Services.BuildServiceProvider();
        return new NpgsqlConnectionStringBuilder(services.GetRequiredService<NpgsqlDataSource>().ConnectionString);
    }

    private sealed class ProbeContext(DbContextOptions<ProbeContext> options) : DbContext(options);
}
