using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Idempotency;

namespace Shop.Tests.Integration;

/// <summary>The Idempotency-Key middleware with the services' defaults, served by Kestrel on loopback, its keys in a database of its own.</summary>
[Collection(AppCollection.Name)]
public sealed class IdempotencyKeyTests(AppFixture fixture)
{
    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    /// <summary>
    /// An attempt fails (503) for want of its dependency, and the want outlasts it: the pool's one connection is still
    /// busy when the key should be freed. Before, the key stayed "in progress" for its whole lease (60 s) and every retry
    /// in between was refused 409, so a client retrying for 10 s gave up (a CI run: one order of 200 placed at once).
    /// Now the key is freed once a connection is had, and the retry runs.
    /// </summary>
    [Fact]
    public async Task A_key_that_could_not_be_freed_when_its_attempt_failed_is_freed_once_the_database_can_be_had_not_at_the_end_of_its_lease()
    {
        await ScratchDatabase.RunAsync(fixture.App, "idempotency", async (server, database) =>
        {
            var connectionString = new NpgsqlConnectionStringBuilder(server.ConnectionString)
            {
                Database = database, Pooling = true, MaxPoolSize = 1, Timeout = 1,
            }.ConnectionString;
            await using var dataSource = NpgsqlDataSource.Create(connectionString);
            await SqlMigrator.MigrateAsync(dataSource,
                MigrationScript.FromAssembly(typeof(IdempotencyOptions).Assembly, "idempotency", "Shop.ServiceDefaults.Idempotency.Migrations."),
                NullLogger.Instance, whileLocked: null, Cancellation);

            var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = Environments.Production, Args = [] });
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Logging.ClearProviders();
            builder.Configuration["Idempotency:InProgressLeaseSeconds"] = "60";
            builder.AddServiceDefaults();
            builder.Services.AddSingleton(dataSource);
            builder.AddIdempotency();
            await using var app = builder.Build();
            app.MapDefaultEndpoints();
            app.UseIdempotency();
            var runs = 0;
            app.MapPost("/charges", async (NpgsqlDataSource db) =>
            {
                if (Interlocked.Increment(ref runs) == 1)
                {
                    // What ended the attempt still holds the pool's one connection for 3 s after it.
                    var connection = await db.OpenConnectionAsync();
                    _ = Task.Delay(TimeSpan.FromSeconds(3)).ContinueWith(_ => connection.Dispose(), TaskScheduler.Default);
                    throw new TimeoutException("The payment provider did not answer.");
                }

                return Results.Ok(new { run = runs });
            }).RequireIdempotencyKey();
            await app.StartAsync(Cancellation);
            try
            {
                var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
                using var client = new HttpClient { BaseAddress = new Uri(address) };
                async Task<HttpResponseMessage> ChargeAsync()
                {
                    using var request = new HttpRequestMessage(HttpMethod.Post, "/charges") { Content = JsonContent.Create(new { amount = 10 }) };
                    request.Headers.Add("Idempotency-Key", "charge-1");
                    return await client.SendAsync(request, Cancellation);
                }

                using (var failed = await ChargeAsync())
                {
                    Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
                }

                // A careful client retries a 503 and a 409 for 15 s: until the connection is back (3 s) its retries cannot
                // have one either (503), then the key must be freed within seconds.
                var retried = System.Diagnostics.Stopwatch.StartNew();
                HttpStatusCode status;
                string body;
                do
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(500), Cancellation);
                    using var retry = await ChargeAsync();
                    (status, body) = (retry.StatusCode, await retry.Content.ReadAsStringAsync(Cancellation));
                }
                while (status is HttpStatusCode.Conflict or HttpStatusCode.ServiceUnavailable && retried.Elapsed < TimeSpan.FromSeconds(15));

                Assert.True(status == HttpStatusCode.OK, $"After {retried.Elapsed} of retries: {(int)status} {body}");
                Assert.Equal(2, JsonDocument.Parse(body).RootElement.GetProperty("run").GetInt32());

                // The success is the key's answer from now on.
                using var replay = await ChargeAsync();
                Assert.Equal(HttpStatusCode.OK, replay.StatusCode);
                Assert.Equal("true", replay.Headers.GetValues(IdempotencyMiddleware.ReplayedHeader).Single());
                Assert.Equal(2, runs);
            }
            finally
            {
                await app.StopAsync(CancellationToken.None);
            }
        });
    }
}
