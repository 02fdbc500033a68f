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
builder.AddEventConsumer<NotificationsDbContext>(new ConsumerOptions(
    Consumer: "notifications",
    Queue: "notifications.orders",
    Exchange: "orders.events",
    RoutingKeys: ["order.*"]));
builder.Services.AddScoped<IEventHandler, OrderCreatedHandler>();

var app = builder.Build();

app.MapDefaultEndpoints();
app.UseShopAuthentication();
app.MapDeadLetterAdmin();

app.Run();
