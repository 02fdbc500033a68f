using Shop.Orders;
using Shop.Orders.Catalog;
using Shop.Orders.Orders;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Messaging;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddNpgsqlDbContext<OrdersDbContext>("ordersdb");
builder.AddDatabaseMigrations<OrdersDbContext>();
builder.AddRabbitMQClient("messaging");
builder.AddOutboxRelay<OrdersDbContext>();
builder.Services.AddHttpClient<CatalogClient>(client => client.BaseAddress = new Uri("http://inventory"));

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapOrdersApi();

app.Run();
