namespace Shop.Gateway.Edge;

public sealed class CorsSettings
{
    public const string Section = "Cors";

    /// <summary>Browser origins allowed to call the API (exact matches); empty allows none.</summary>
    public string[] AllowedOrigins { get; set; } = [];
}
