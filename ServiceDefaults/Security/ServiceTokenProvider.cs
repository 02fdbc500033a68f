using System.ComponentModel.DataAnnotations;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.Extensions.Options;

namespace Shop.ServiceDefaults.Security;

/// <summary>This service's own credentials for the client-credentials grant (handed down by the AppHost).</summary>
public sealed class ServiceClientOptions
{
    public const string Section = "Auth:Client";

    [Required]
    public string ClientId { get; set; } = "";

    [Required, MinLength(32)]
    public string ClientSecret { get; set; } = "";

    [Required]
    public string TokenUrl { get; set; } = "http://gateway/v1/auth/token";
}

/// <summary>Gets and caches a service access token, renewing it a minute before it expires.</summary>
public sealed class ServiceTokenProvider(IHttpClientFactory clients, IOptions<ServiceClientOptions> options, TimeProvider clock)
{
    public const string ClientName = "service-token";
    private readonly SemaphoreSlim _gate = new(1, 1);
    private (string Token, DateTimeOffset RenewAt)? _current;

    public async ValueTask<string> GetTokenAsync(CancellationToken cancellationToken)
    {
        if (_current is { } current && clock.GetUtcNow() < current.RenewAt)
        {
            return current.Token;
        }

        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_current is { } fresh && clock.GetUtcNow() < fresh.RenewAt)
            {
                return fresh.Token;
            }

            var settings = options.Value;
            using var client = clients.CreateClient(ClientName);
            using var response = await client.PostAsJsonAsync(settings.TokenUrl,
                new { grantType = "client_credentials", clientId = settings.ClientId, clientSecret = settings.ClientSecret }, cancellationToken);
            response.EnsureSuccessStatusCode();
            var token = await response.Content.ReadFromJsonAsync<TokenResponse>(cancellationToken)
                ?? throw new InvalidOperationException("The token endpoint returned no token.");
            _current = (token.AccessToken, clock.GetUtcNow() + TimeSpan.FromSeconds(Math.Max(0, token.ExpiresIn - 60)));
            return token.AccessToken;
        }
        finally
        {
            _gate.Release();
        }
    }

    private sealed record TokenResponse(string AccessToken, int ExpiresIn);
}

/// <summary>Authenticates outgoing calls with the service's own token.</summary>
public sealed class ServiceTokenHandler(ServiceTokenProvider tokens) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await tokens.GetTokenAsync(cancellationToken));
        return await base.SendAsync(request, cancellationToken);
    }
}
