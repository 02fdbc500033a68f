using Microsoft.Extensions.Options;
using Shop.Inventory;
using Shop.Inventory.Products;
using Shop.Inventory.Reservations;
using Shop.Inventory.Stock;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Idempotency;
using Shop.ServiceDefaults.Messaging;
using Shop.ServiceDefaults.Messaging.DeadLetters;
using Shop.ServiceDefaults.Security;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddShopAuthentication();
builder.AddNpgsqlDbContext<InventoryDbContext>("inventorydb");
builder.AddDatabaseMigrations<InventoryDbContext>(includeIdempotency: true);
builder.AddIdempotency();
builder.AddRedisClient("redis");
builder.AddRabbitMQClient("messaging");
builder.AddOutboxRelay<InventoryDbContext>();
builder.AddEventConsumer<InventoryDbContext>(Subscriptions.InventoryClosedOrders);
builder.Services.AddScoped<IEventHandler>(services => ActivatorUtilities.CreateInstance<OrderClosedHandler>(services, "order.cancelled"));
builder.Services.AddScoped<IEventHandler>(services => ActivatorUtilities.CreateInstance<OrderClosedHandler>(services, "order.failed"));
builder.Services.AddOptions<ReservationOptions>().BindConfiguration(ReservationOptions.Section).ValidateDataAnnotations().ValidateOnStart();
builder.Services.AddSingleton<ReservationStore>();
builder.Services.AddHostedService<ReservationSweeper>();
builder.Services.AddOptions<ProductCacheOptions>().BindConfiguration(ProductCacheOptions.Section).ValidateDataAnnotations().ValidateOnStart();
builder.Services.AddSingleton(services =>
{
    var cache = services.GetRequiredService<IOptions<ProductCacheOptions>>().Value;
    return new NearCache<NearProduct>(services.GetRequiredService<TimeProvider>(), TimeSpan.FromMilliseconds(cache.NearCacheLeaseMilliseconds),
        TimeSpan.FromSeconds(cache.NearCacheEntrySeconds), cache.NearCacheMaxEntries);
});
builder.Services.AddSingleton(services => ActivatorUtilities.CreateInstance<ProductInvalidations>(services, builder.Configuration.GetConnectionString("redis")!));
builder.Services.AddHostedService(services => services.GetRequiredService<ProductInvalidations>());
builder.Services.AddSingleton<ProductCache>();
builder.Services.AddSingleton<StaleFloors>();
if (builder.Environment.IsDevelopment())
{
    builder.Services.AddScoped<IDatabaseSeeder<InventoryDbContext>, DemoCatalogSeeder>();
}

var app = builder.Build();

app.MapDefaultEndpoints();
app.UseShopAuthentication();
app.UseIdempotency();
app.MapProductsApi();
app.MapStockApi();
app.MapReservationsApi();
app.MapDeadLetterAdmin();

app.Run();
