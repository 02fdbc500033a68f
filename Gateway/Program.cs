using Shop.Gateway;
using Shop.Gateway.Edge;
using Shop.Gateway.Forwarding;
using Shop.Gateway.Identity;
using Shop.Gateway.RateLimiting;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Security;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddNpgsqlDbContext<IdentityDbContext>("identitydb");
builder.AddDatabaseMigrations<IdentityDbContext>(includeMessaging: false);
builder.AddRedisClient("redis");
builder.AddIdentity();
builder.AddShopAuthentication();
builder.AddSharedRateLimiting();
builder.AddEdgeProtection();
builder.AddForwarding();
builder.AddForwardedApiDocuments("orders", "inventory", "notifications");

var app = builder.Build();

app.UseEdgeProtection();
app.MapDefaultEndpoints();
app.UseAuthentication();
app.RejectInvalidTokens();
app.UseSharedRateLimiting();
app.UseAuthorization();

app.MapAuthApi();
app.MapForwarder("/v1/products", "inventory");
app.MapForwarder("/v1/inventory", "inventory");
app.MapForwarder("/v1/orders", "orders");
app.MapForwarder("/v2/orders", "orders");
app.MapForwarder("/v1/webhooks", "notifications");
app.MapDeadLetterAdminForwarders("notifications", "inventory");
app.MapForwardedApiDocuments();

app.Run();
