using Shop.Gateway;
using Shop.Gateway.Forwarding;
using Shop.ServiceDefaults.Data;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddNpgsqlDbContext<IdentityDbContext>("identitydb");
builder.AddDatabaseMigrations<IdentityDbContext>(includeMessaging: false);
builder.AddRedisClient("redis");
builder.AddForwarding();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapForwarder("/v1/products", "inventory");
app.MapForwarder("/v1/inventory", "inventory");
app.MapForwarder("/v1/orders", "orders");
app.MapForwarder("/v1/webhooks", "notifications");

app.Run();
