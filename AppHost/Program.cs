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

var inventory = builder.AddProject<Projects.Inventory>("inventory")
    .WithReference(inventoryDb).WaitFor(inventoryDb)
    .WithReference(redis).WaitFor(redis)
    .WithReference(messaging).WaitFor(messaging)
    .WithReplicas(2)
    .WithHttpHealthCheck("/health");

var orders = builder.AddProject<Projects.Orders>("orders")
    .WithReference(ordersDb).WaitFor(ordersDb)
    .WithReference(messaging).WaitFor(messaging)
    .WithReference(inventory)
    .WithHttpHealthCheck("/health");

var notifications = builder.AddProject<Projects.Notifications>("notifications")
    .WithReference(notificationsDb).WaitFor(notificationsDb)
    .WithReference(messaging).WaitFor(messaging)
    .WithHttpHealthCheck("/health");

builder.AddProject<Projects.Gateway>("gateway")
    .WithReference(identityDb).WaitFor(identityDb)
    .WithReference(redis).WaitFor(redis)
    .WithReference(inventory)
    .WithReference(orders)
    .WithReference(notifications)
    .WithReplicas(2)
    .WithHttpEndpoint(port: builder.Configuration.GetValue("AppHost:GatewayPort", 5000))
    .WithExternalHttpEndpoints()
    .WithHttpHealthCheck("/health");

builder.Build().Run();

/// <summary>The AppHost's entry point type, used by the testing builder.</summary>
public partial class Program;
