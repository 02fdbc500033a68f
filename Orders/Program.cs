using Shop.Orders;
using Shop.Orders.Catalog;
using Shop.Orders.Orders;
using Shop.Orders.Saga;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Idempotency;
using Shop.ServiceDefaults.Messaging;
using Shop.ServiceDefaults.Security;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddShopAuthentication();
builder.AddNpgsqlDbContext<OrdersDbContext>("ordersdb", rowLevelSecurityRole: "orders_app");
builder.AddDatabaseMigrations<OrdersDbContext>(includeIdempotency: true);
builder.AddIdempotency();
builder.AddRabbitMQClient("messaging");
builder.AddOutboxRelay<OrdersDbContext>();
builder.Services.AddHttpClient<CatalogClient>(client => client.BaseAddress = new Uri("http://inventory")).AddServiceToken();
builder.Services.AddHttpClient<InventoryClient>(client => client.BaseAddress = new Uri("http://inventory")).AddServiceToken();
builder.Services.AddOptions<SagaOptions>().BindConfiguration(SagaOptions.Section).ValidateDataAnnotations().ValidateOnStart();
builder.Services.AddOptions<FakePaymentOptions>().BindConfiguration(FakePaymentOptions.Section).ValidateDataAnnotations().ValidateOnStart();
builder.Services.AddScoped<IPaymentProvider, FakePaymentProvider>();
builder.Services.AddScoped<OrderSaga>();
builder.Services.AddSingleton<SagaSignal>();
builder.Services.AddHostedService<SagaWorker>();

var app = builder.Build();

app.MapDefaultEndpoints();
app.UseShopAuthentication();
app.UseIdempotency();
app.MapOrdersApi();
app.MapOrdersApiV2();

app.Run();
