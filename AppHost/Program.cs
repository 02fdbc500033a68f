using Microsoft.Extensions.Configuration;
using Shop.Hosting;
using Shop.Hosting.ApplicationModel;

var builder = DistributedApplication.CreateBuilder(args);

var postgres = builder.AddPostgres("postgres");
var identityDb = postgres.AddDatabase("identitydb");
var ordersDb = postgres.AddDatabase("ordersdb");
var inventoryDb = postgres.AddDatabase("inventorydb");
var notificationsDb = postgres.AddDatabase("notificationsdb");
var redis = builder.AddRedis("redis");
var messaging = builder.AddRabbitMQ("messaging");

// Secrets are generated per run unless configured (Parameters:<name>); none is in the repository.
var adminPassword = builder.AddParameter("admin-password", builder.Configuration["AppHost:AdminPassword"], secret: true)
    .WithPrintedValue("Admin password (admin@demo.local, tenant demo)");
// The Gateway and Orders refuse a client secret shorter than 32 characters.
var ordersClientSecret = builder.AddParameter("orders-client-secret", secret: true, minLength: 32);

var gateway = builder.AddProject<Projects.Gateway>("gateway");

var inventory = builder.AddProject<Projects.Inventory>("inventory")
    .WithReference(inventoryDb).WaitFor(inventoryDb)
    .WithReference(redis).WaitFor(redis)
    .WithReference(messaging).WaitFor(messaging)
    .WithReference(gateway)
    .WithReplicas(2)
    .WithHttpHealthCheck("/health");

var orders = builder.AddProject<Projects.Orders>("orders")
    .WithReference(ordersDb).WaitFor(ordersDb)
    .WithReference(messaging).WaitFor(messaging)
    .WithReference(inventory)
    .WithReference(gateway)
    .WithEnvironment("Auth__Client__ClientId", "orders")
    .WithEnvironment("Auth__Client__ClientSecret", ordersClientSecret)
    .WithHttpHealthCheck("/health");

var notifications = builder.AddProject<Projects.Notifications>("notifications")
    .WithReference(notificationsDb).WaitFor(notificationsDb)
    .WithReference(messaging).WaitFor(messaging)
    .WithReference(gateway)
    .WithHttpHealthCheck("/health");

gateway
    .WithReference(identityDb).WaitFor(identityDb)
    .WithReference(redis).WaitFor(redis)
    .WithReference(inventory)
    .WithReference(orders)
    .WithReference(notifications)
    .WithEnvironment("Identity__Seed__AdminPassword", adminPassword)
    .WithEnvironment("Identity__ServiceClients__orders", ordersClientSecret)
    .WithReplicas(2)
    // While Redis is down each replica limits alone, to its share of the shared limit.
    .WithEnvironment("RateLimiting__FallbackReplicaCount", () => gateway.Resource.Replicas.ToString(System.Globalization.CultureInfo.InvariantCulture))
    .WithHttpEndpoint(port: builder.Configuration.GetValue("AppHost:GatewayPort", 5000))
    .WithExternalHttpEndpoints()
    .WithHttpHealthCheck("/health");

builder.Build().Run();

/// <summary>The AppHost's entry point type, used by the testing builder.</summary>
public partial class Program;
