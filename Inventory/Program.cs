using Shop.Inventory;
using Shop.Inventory.Products;
using Shop.ServiceDefaults.Data;
using Shop.ServiceDefaults.Messaging;
using Shop.ServiceDefaults.Security;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddShopAuthentication();
builder.AddNpgsqlDbContext<InventoryDbContext>("inventorydb");
builder.AddDatabaseMigrations<InventoryDbContext>();
builder.AddRedisClient("redis");
builder.AddRabbitMQClient("messaging");
builder.AddOutboxRelay<InventoryDbContext>();
if (builder.Environment.IsDevelopment())
{
    builder.Services.AddScoped<IDatabaseSeeder<InventoryDbContext>, DemoCatalogSeeder>();
}

var app = builder.Build();

app.MapDefaultEndpoints();
app.UseShopAuthentication();
app.MapProductsApi();

app.Run();
