using Shop.Notifications;
using Shop.Notifications.Notifications;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Messaging;
using Shop.ServiceDefaults.Messaging.DeadLetters;
using Shop.ServiceDefaults.Security;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddShopAuthentication();
builder.AddNpgsqlDbContext<NotificationsDbContext>("notificationsdb");
builder.AddDatabaseMigrations<NotificationsDbContext>();
builder.AddRabbitMQClient("messaging");
builder.AddEventConsumer<NotificationsDbContext>(Subscriptions.NotificationsOrders with
{
    // What the customer is told follows the order's own history: an event older than one applied is dropped.
    IgnoreStaleAggregateVersions = true,
});
builder.Services.AddScoped<IEventHandler, OrderCreatedHandler>();
foreach (var eventType in new[] { "order.paid", "order.shipped", "order.cancelled", "order.failed" })
{
    builder.Services.AddScoped<IEventHandler>(services => ActivatorUtilities.CreateInstance<OrderStatusHandler>(services, eventType));
}

var app = builder.Build();

app.MapDefaultEndpoints();
app.UseShopAuthentication();
app.MapDeadLetterAdmin();

app.Run();
