namespace Shop.ServiceDefaults.OpenApi;

/// <summary>The <c>OpenApi</c> section: whether a service serves its API description, and what its UI lists.</summary>
public sealed class ApiDocsOptions
{
    public const string Section = "OpenApi";

    /// <summary>
    /// Serve <c>/openapi/v1.json</c> and <c>/docs</c>, anonymously. On in every environment: the documents describe
    /// endpoints that callers can discover anyway and hold no secrets.
    /// </summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Further documents the UI lists after the service's own (the Gateway lists those it relays).</summary>
    public List<ApiDocumentLink> Links { get; } = [];
}

/// <summary>A document in the UI's selector: its display name and its URL.</summary>
public sealed record ApiDocumentLink(string Name, string Url);
