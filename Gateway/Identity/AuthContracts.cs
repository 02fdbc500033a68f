namespace Shop.Gateway.Identity;

public sealed record RegisterRequest(string? Tenant, string? Email, string? Password, string? Name);

public sealed record RegisteredUser(Guid Id, string Email, string Tenant);

public sealed record LoginRequest(string? Tenant, string? Email, string? Password);

public sealed record RefreshRequest(string? RefreshToken);

public sealed record TokenResponse(string AccessToken, string RefreshToken, string TokenType, int ExpiresIn);

public sealed record ClientCredentialsRequest(string? GrantType, string? ClientId, string? ClientSecret);

public sealed record ServiceTokenResponse(string AccessToken, string TokenType, int ExpiresIn);

public sealed record MeResponse(Guid Id, string Email, string Name, string Tenant, string Role);

public sealed record ChangeRoleRequest(string? Role);
