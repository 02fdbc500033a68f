namespace Shop.Inventory.Products;

public sealed record Money(decimal Amount, string Currency)
{
    public static bool IsValidCurrency(string? currency) => currency is { Length: 3 } && currency.All(char.IsAsciiLetterUpper);

    public static Money Of(decimal amount, string currency)
    {
        // Compared, not ThrowIfNegative: that reads the sign bit, and JSON's -0 is a decimal zero with its sign set.
        if (amount < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(amount), amount, "A price cannot be negative.");
        }

        if (!IsValidCurrency(currency))
        {
            throw new ArgumentException("Currency must be a three-letter ISO 4217 code.", nameof(currency));
        }

        var rounded = decimal.Round(amount, 2);
        return new Money(rounded == 0 ? 0m : rounded, currency);
    }
}

public sealed class Product
{
    private Product()
    {
    }

    public Guid Id { get; private set; }
    public string TenantId { get; private set; } = "";
    public string Sku { get; private set; } = "";
    public string Name { get; private set; } = "";
    public string Description { get; private set; } = "";
    public Money Price { get; private set; } = null!;
    public bool Active { get; private set; }
    public long Version { get; private set; }
    public DateTimeOffset CreatedAt { get; private set; }
    public DateTimeOffset UpdatedAt { get; private set; }
    public DateTimeOffset? DeletedAt { get; private set; }

    public static Product Create(string tenantId, string sku, string name, string description, Money price, DateTimeOffset now) => new()
    {
        Id = Guid.CreateVersion7(now),
        TenantId = tenantId,
        Sku = sku,
        Name = name,
        Description = description,
        Price = price,
        Active = true,
        Version = 1,
        CreatedAt = DatabaseTime.Stored(now),
        UpdatedAt = DatabaseTime.Stored(now),
    };

    /// <summary>Every change bumps the version, which is the product's ETag and its optimistic-concurrency token.</summary>
    public void Update(string sku, string name, string description, Money price, bool active, DateTimeOffset now)
    {
        (Sku, Name, Description, Price, Active) = (sku, name, description, price, active);
        Version++;
        UpdatedAt = DatabaseTime.Stored(now);
    }

    public void Delete(DateTimeOffset now)
    {
        Active = false;
        DeletedAt = DatabaseTime.Stored(now);
        Version++;
        UpdatedAt = DatabaseTime.Stored(now);
    }

    public CachedProduct ToCached() => new(Id, TenantId, Sku, Name, Description, Price.Amount, Price.Currency, Active, Version, CreatedAt, UpdatedAt);
}
