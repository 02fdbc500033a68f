using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Npgsql;
using Shop.Hosting;

namespace Shop.Tests.Integration;

[Collection(AppCollection.Name)]
public sealed class IdentityTests(AppFixture fixture)
{
    private DistributedApplication App => fixture.App;

    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Register_login_and_me_return_the_documented_shapes()
    {
        var email = $"shape{Guid.NewGuid():N}@example.test";
        using var client = ShopClients.Anonymous(App);

        using var registered = await client.PostAsJsonAsync("/v1/auth/register",
            new { tenant = "demo", email, password = "long enough password", name = "Shape" }, Cancellation);
        Assert.Equal(HttpStatusCode.Created, registered.StatusCode);
        var user = await registered.Content.ReadFromJsonAsync<JsonElement>(Cancellation);
        Assert.Equal(email, user.GetProperty("email").GetString());
        Assert.Equal("demo", user.GetProperty("tenant").GetString());

        var tokens = await ShopClients.LoginAsync(App, email, "long enough password");
        Assert.Equal("Bearer", tokens.TokenType);
        Assert.InRange(tokens.ExpiresIn, 60, 3600);

        using var authorized = ShopClients.Authorized(App, tokens.AccessToken);
        var me = await authorized.GetFromJsonAsync<JsonElement>("/v1/auth/me", Cancellation);
        Assert.Equal("customer", me.GetProperty("role").GetString());
        Assert.Equal(user.GetProperty("id").GetGuid(), me.GetProperty("id").GetGuid());
    }

    [Fact]
    public async Task Registration_rejects_bad_input_unknown_tenants_and_duplicates()
    {
        using var client = ShopClients.Anonymous(App);
        var email = $"dup{Guid.NewGuid():N}@example.test";

        using var invalid = await client.PostAsJsonAsync("/v1/auth/register", new { tenant = "demo", email = "no-at-sign", password = "short", name = "" }, Cancellation);
        using var unknownTenant = await client.PostAsJsonAsync("/v1/auth/register", new { tenant = "nope", email, password = "long enough password", name = "X" }, Cancellation);
        using var first = await client.PostAsJsonAsync("/v1/auth/register", new { tenant = "demo", email, password = "long enough password", name = "X" }, Cancellation);
        using var second = await client.PostAsJsonAsync("/v1/auth/register", new { tenant = "demo", email = email.ToUpperInvariant(), password = "long enough password", name = "X" }, Cancellation);

        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        var errors = (await invalid.Content.ReadFromJsonAsync<JsonElement>(Cancellation)).GetProperty("errors");
        Assert.True(errors.TryGetProperty("email", out _) && errors.TryGetProperty("password", out _) && errors.TryGetProperty("name", out _));
        Assert.Equal(HttpStatusCode.NotFound, unknownTenant.StatusCode);
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
    }

    [Fact]
    public async Task Login_failures_are_uniform_and_an_account_is_throttled_after_repeated_failures()
    {
        var (email, password) = await ShopClients.RegisterAsync(App);
        using var client = ShopClients.Anonymous(App);

        using var wrongPassword = await client.PostAsJsonAsync("/v1/auth/login", new { tenant = "demo", email, password = "wrong password!" }, Cancellation);
        using var unknownUser = await client.PostAsJsonAsync("/v1/auth/login", new { tenant = "demo", email = "nobody@example.test", password = "wrong password!" }, Cancellation);

        Assert.Equal(HttpStatusCode.Unauthorized, wrongPassword.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, unknownUser.StatusCode);
        var a = await wrongPassword.Content.ReadFromJsonAsync<JsonElement>(Cancellation);
        var b = await unknownUser.Content.ReadFromJsonAsync<JsonElement>(Cancellation);
        Assert.Equal(a.GetProperty("title").GetString(), b.GetProperty("title").GetString());
        Assert.Equal(a.GetProperty("detail").GetString(), b.GetProperty("detail").GetString());

        for (var i = 0; i < 5; i++)
        {
            using var failure = await client.PostAsJsonAsync("/v1/auth/login", new { tenant = "demo", email, password = "wrong password!" }, Cancellation);
        }

        using var locked = await client.PostAsJsonAsync("/v1/auth/login", new { tenant = "demo", email, password }, Cancellation);
        Assert.Equal(HttpStatusCode.TooManyRequests, locked.StatusCode);
        Assert.True(locked.Headers.RetryAfter?.Delta > TimeSpan.Zero);
    }

    [Fact]
    public async Task Guesses_sent_at_once_get_no_more_password_checks_than_the_lockout_allows_and_a_success_clears_the_count()
    {
        var (email, password) = await ShopClients.RegisterAsync(App);

        // Each from its own address, so that the per-IP limit is not what stops them.
        var answers = await Task.WhenAll(Enumerable.Range(0, 20).Select(async _ =>
        {
            using var client = ShopClients.Anonymous(App);
            using var answer = await client.PostAsJsonAsync("/v1/auth/login", new { tenant = "demo", email, password = "wrong password!" }, Cancellation);
            return answer.StatusCode;
        }));

        // Before, each guess was checked against a count none of them had added to yet: twenty 401s.
        Assert.Equal(5, answers.Count(a => a == HttpStatusCode.Unauthorized));
        Assert.Equal(15, answers.Count(a => a == HttpStatusCode.TooManyRequests));

        // Another account is not affected, and a correct login clears its own count.
        var (other, otherPassword) = await ShopClients.RegisterAsync(App);
        using var anonymous = ShopClients.Anonymous(App);
        for (var i = 0; i < 4; i++)
        {
            using var failure = await anonymous.PostAsJsonAsync("/v1/auth/login", new { tenant = "demo", email = other, password = "wrong password!" }, Cancellation);
            Assert.Equal(HttpStatusCode.Unauthorized, failure.StatusCode);
        }

        await ShopClients.LoginAsync(App, other, otherPassword);
        for (var i = 0; i < 4; i++)
        {
            using var failure = await anonymous.PostAsJsonAsync("/v1/auth/login", new { tenant = "demo", email = other, password = "wrong password!" }, Cancellation);
            Assert.Equal(HttpStatusCode.Unauthorized, failure.StatusCode);
        }

        await ShopClients.LoginAsync(App, other, otherPassword);
    }

    [Fact]
    public async Task A_logout_that_waited_for_a_rotation_in_progress_also_revokes_the_token_that_rotation_added()
    {
        var (email, password) = await ShopClients.RegisterAsync(App);
        var tokens = await ShopClients.LoginAsync(App, email, password);
        await using var identity = new NpgsqlConnection(App.GetConnectionString("identitydb"));
        await identity.OpenAsync(Cancellation);
        var (family, user) = await ReadOneAsync(identity, "SELECT family_id, user_id FROM refresh_tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
            tokens.RefreshToken, r => (r.GetGuid(0), r.GetGuid(1)));

        // A rotation in progress, as the Gateway's own: the family's token locked, its successor inserted, not yet committed.
        var successor = Guid.NewGuid();
        await using var rotation = await identity.BeginTransactionAsync(Cancellation);
        await ExecuteAsync(identity, rotation, "SELECT 1 FROM refresh_tokens WHERE family_id = $1 FOR UPDATE", family);
        await ExecuteAsync(identity, rotation, "UPDATE refresh_tokens SET used_at = now() WHERE family_id = $1", family);
        await ExecuteAsync(identity, rotation,
            $"INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, created_at, expires_at) VALUES ('{successor}', $1, '{user}', sha256(convert_to(gen_random_uuid()::text, 'UTF8')), now(), now() + interval '1 day')",
            family);

        using var client = ShopClients.Authorized(App, tokens.AccessToken);
        var logout = client.PostAsync("/v1/auth/logout", null, Cancellation);
        await ShopData.WaitUntilAsync("the logout waiting on the rotation's lock", async () =>
            await ShopData.LockWaitersAsync(App, "identitydb", "%refresh_tokens%") == 1);
        await rotation.CommitAsync(Cancellation);

        using var answer = await logout;
        Assert.Equal(HttpStatusCode.NoContent, answer.StatusCode);
        // Before, the update that had waited revoked only the row it had seen: the successor stayed valid for 14 days.
        Assert.Equal(0, await ShopData.ScalarAsync<long>(App, "identitydb", $"SELECT count(*) FROM refresh_tokens WHERE family_id = '{family}' AND revoked_at IS NULL"));
    }

    [Fact]
    public async Task A_login_that_rehashes_the_password_while_the_users_role_changes_signs_in_with_the_role_as_it_is_now()
    {
        var (email, password) = await ShopClients.RegisterAsync(App);
        // A hash made with other parameters (one pass where the Gateway makes two): the next login makes a new one.
        using (var older = new Shop.Gateway.Identity.Passwords.Argon2idPasswordHasher(
            Microsoft.Extensions.Options.Options.Create(new Shop.Gateway.Identity.Passwords.PasswordHashingOptions { Iterations = 1 })))
        {
            var hash = await older.HashAsync(password, Cancellation);
            Assert.Equal(1L, await ShopData.ScalarAsync<long>(App, "identitydb",
                $"WITH changed AS (UPDATE users SET password_hash = '{hash}' WHERE email = '{email}' RETURNING 1) SELECT count(*) FROM changed"));
        }

        // The login's write of the new hash waits on the user's row while a role change holds it, then finds the version moved.
        await using var identity = new NpgsqlConnection(App.GetConnectionString("identitydb"));
        await identity.OpenAsync(Cancellation);
        await using var change = await identity.BeginTransactionAsync(Cancellation);
        await ExecuteAsync(identity, change, "UPDATE users SET role = 'admin', version = version + 1 WHERE email = $1", email);
        using var client = ShopClients.Anonymous(App);
        var login = client.PostAsJsonAsync("/v1/auth/login", new { tenant = "demo", email, password }, Cancellation);
        await ShopData.WaitUntilAsync("the login's rehash waiting on the role change", async () =>
            await ShopData.LockWaitersAsync(App, "identitydb", "%UPDATE users%") == 1);
        await change.CommitAsync(Cancellation);

        // Before, the login answered 500 and stored no session.
        using var answer = await login;
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        var token = (await answer.Content.ReadFromJsonAsync<JsonElement>(Cancellation)).GetProperty("accessToken").GetString()!;
        var claims = JsonDocument.Parse(Microsoft.IdentityModel.Tokens.Base64UrlEncoder.Decode(token.Split('.')[1])).RootElement;
        Assert.Equal("admin", claims.GetProperty("role").GetString());
    }

    private static async Task<T> ReadOneAsync<T>(NpgsqlConnection connection, string sql, object parameter, Func<NpgsqlDataReader, T> read)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.Add(new() { Value = parameter });
        await using var reader = await command.ExecuteReaderAsync(Cancellation);
        Assert.True(await reader.ReadAsync(Cancellation));
        return read(reader);
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, object parameter)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        command.Parameters.Add(new() { Value = parameter });
        await command.ExecuteNonQueryAsync(Cancellation);
    }

    [Fact]
    public async Task Refresh_rotates_and_reusing_a_rotated_token_revokes_the_whole_family_including_the_newest()
    {
        var (email, password) = await ShopClients.RegisterAsync(App);
        var first = await ShopClients.LoginAsync(App, email, password);
        using var client = ShopClients.Anonymous(App);

        using var rotated = await client.PostAsJsonAsync("/v1/auth/refresh", new { refreshToken = first.RefreshToken }, Cancellation);
        Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        var second = (await rotated.Content.ReadFromJsonAsync<Tokens>(Cancellation))!;
        Assert.NotEqual(first.RefreshToken, second.RefreshToken);

        using var reused = await client.PostAsJsonAsync("/v1/auth/refresh", new { refreshToken = first.RefreshToken }, Cancellation);
        Assert.Equal(HttpStatusCode.BadRequest, reused.StatusCode);
        Assert.Equal("invalid_grant", (await reused.Content.ReadFromJsonAsync<JsonElement>(Cancellation)).GetProperty("error").GetString());

        using var newest = await client.PostAsJsonAsync("/v1/auth/refresh", new { refreshToken = second.RefreshToken }, Cancellation);
        Assert.Equal(HttpStatusCode.BadRequest, newest.StatusCode);
    }

    [Fact]
    public async Task Logout_through_one_replica_denies_the_access_token_on_every_other_replica()
    {
        var (email, password) = await ShopClients.RegisterAsync(App);
        var tokens = await ShopClients.LoginAsync(App, email, password);
        var replicas = App.ResourceNotifications.GetSnapshot("gateway").Replicas.Select(r => r.Index).ToList();
        Assert.Equal(3, replicas.Count);
        foreach (var replica in replicas)
        {
            using var before = ShopClients.Authorized(App, tokens.AccessToken, replica);
            Assert.Equal(HttpStatusCode.OK, (await before.GetAsync("/v1/auth/me", Cancellation)).StatusCode);
        }

        using (var first = ShopClients.Authorized(App, tokens.AccessToken, replicas[0]))
        {
            Assert.Equal(HttpStatusCode.NoContent, (await first.PostAsync("/v1/auth/logout", null, Cancellation)).StatusCode);
        }

        foreach (var replica in replicas)
        {
            using var after = ShopClients.Authorized(App, tokens.AccessToken, replica);
            Assert.Equal(HttpStatusCode.Unauthorized, (await after.GetAsync("/v1/auth/me", Cancellation)).StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, (await after.GetAsync("/v1/products", Cancellation)).StatusCode);
        }

        using var refresh = ShopClients.Anonymous(App);
        Assert.Equal(HttpStatusCode.BadRequest, (await refresh.PostAsJsonAsync("/v1/auth/refresh", new { refreshToken = tokens.RefreshToken }, Cancellation)).StatusCode);
    }

    [Fact]
    public async Task A_gateway_replica_started_after_a_logout_refuses_the_token_it_never_heard_revoked()
    {
        var (email, password) = await ShopClients.RegisterAsync(App);
        var revoked = await ShopClients.LoginAsync(App, email, password);
        var (other, _) = await ShopClients.CustomerAsync(App);
        using var _o = other;
        using (var first = ShopClients.Authorized(App, revoked.AccessToken, replica: 0))
        {
            Assert.Equal(HttpStatusCode.NoContent, (await first.PostAsync("/v1/auth/logout", null, Cancellation)).StatusCode);
        }

        // Replica 2 dies and comes back with empty memory: it must load the revocation from Redis before it trusts itself.
        var before = App.ResourceNotifications.GetSnapshot("gateway").Replicas[2];
        var killedAt = DateTimeOffset.UtcNow;
        using (var process = Process.GetProcessById(before.Pid!.Value))
        {
            process.Kill();
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        timeout.CancelAfter(AppFixture.StartTimeout);
        await App.ResourceNotifications.WaitForResourceAsync("gateway",
            s => s.IsHealthy && s.Replicas[2].Restarts > before.Restarts, timeout.Token);
        // Wait until it holds its lease, so that the answer below comes from its memory, not from Redis.
        await ShopData.WaitUntilAsync("the restarted replica subscribed to token revocations", () => Task.FromResult(
            App.Orchestrator.Notifications.Find("gateway").Logs.Tail(500, replica: 2)
                .Any(l => l.Timestamp > killedAt && l.Text.Contains("Token revocations subscribed", StringComparison.Ordinal))), seconds: 60);
        await Task.Delay(TimeSpan.FromSeconds(1), Cancellation);

        using var restarted = ShopClients.Authorized(App, revoked.AccessToken, replica: 2);
        Assert.Equal(HttpStatusCode.Unauthorized, (await restarted.GetAsync("/v1/auth/me", Cancellation)).StatusCode);
        using var stillValid = ShopClients.Anonymous(App, replica: 2);
        stillValid.DefaultRequestHeaders.Authorization = other.DefaultRequestHeaders.Authorization;
        Assert.Equal(HttpStatusCode.OK, (await stillValid.GetAsync("/v1/auth/me", Cancellation)).StatusCode);
    }

    [Fact]
    public async Task Revocation_checks_are_answered_from_each_replicas_memory_without_asking_redis()
    {
        var (customer, tokens) = await ShopClients.CustomerAsync(App);
        using var _c = customer;
        var replicas = App.ResourceNotifications.GetSnapshot("gateway").Replicas.Select(r => r.Index).ToList();
        using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(App.GetConnectionString("redis") + ",allowAdmin=true");
        var server = redis.GetServer(redis.GetEndPoints()[0]);
        async Task<long> ExistsCallsAsync()
        {
            var stats = await server.InfoRawAsync("commandstats");
            var line = stats.Split('\n').FirstOrDefault(l => l.StartsWith("cmdstat_exists:", StringComparison.Ordinal));
            return line is null ? 0 : long.Parse(line.Split("calls=")[1].Split(',')[0], System.Globalization.CultureInfo.InvariantCulture);
        }

        const int perReplica = 10;
        var before = await ExistsCallsAsync();
        foreach (var replica in replicas)
        {
            using var client = ShopClients.Authorized(App, tokens.AccessToken, replica);
            for (var i = 0; i < perReplica; i++)
            {
                Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/auth/me", Cancellation)).StatusCode);
            }
        }

        // Each of these requests checked its token for revocation. A replica that lost its lease for a moment asks
        // Redis (EXISTS), so a few are tolerated; asking Redis every time, as before, is not.
        var asked = await ExistsCallsAsync() - before;
        Assert.True(asked < replicas.Count * perReplica / 3, $"{asked} of {replicas.Count * perReplica} revocation checks asked Redis.");
    }

    [Fact]
    public async Task Admins_manage_roles_within_their_tenant_and_customers_cannot()
    {
        var (customer, _) = await ShopClients.CustomerAsync(App);
        using var _c = customer;
        using var admin = await ShopClients.AdminAsync(App);
        var (email, password) = await ShopClients.RegisterAsync(App);
        var target = (await ShopClients.LoginAsync(App, email, password)).AccessToken;
        using var targetClient = ShopClients.Authorized(App, target);
        var id = (await targetClient.GetFromJsonAsync<JsonElement>("/v1/auth/me", Cancellation)).GetProperty("id").GetGuid();

        using var denied = await customer.PutAsJsonAsync($"/v1/auth/users/{id}/role", new { role = "admin" }, Cancellation);
        using var invalid = await admin.PutAsJsonAsync($"/v1/auth/users/{id}/role", new { role = "root" }, Cancellation);
        using var granted = await admin.PutAsJsonAsync($"/v1/auth/users/{id}/role", new { role = "admin" }, Cancellation);

        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.Equal(HttpStatusCode.OK, granted.StatusCode);
        Assert.Equal("admin", (await granted.Content.ReadFromJsonAsync<JsonElement>(Cancellation)).GetProperty("role").GetString());
    }

    [Fact]
    public async Task Role_changes_of_one_user_at_once_are_all_made_and_none_answers_500()
    {
        using var admin = await ShopClients.AdminAsync(App);
        var (email, password) = await ShopClients.RegisterAsync(App);
        using var target = ShopClients.Authorized(App, (await ShopClients.LoginAsync(App, email, password)).AccessToken);
        var id = (await target.GetFromJsonAsync<JsonElement>("/v1/auth/me", Cancellation)).GetProperty("id").GetGuid();

        // Each reads the user's version, and all but one find it moved when they write: before, those answered 500.
        using var start = new ManualResetEventSlim();
        var changes = Enumerable.Range(0, 16).Select(i => Task.Run(async () =>
        {
            start.Wait(Cancellation);
            var role = i % 2 == 0 ? "admin" : "customer";
            using var answer = await admin.PutAsJsonAsync($"/v1/auth/users/{id}/role", new { role }, Cancellation);
            return (role, answer.StatusCode, Body: await answer.Content.ReadAsStringAsync(Cancellation));
        }, Cancellation)).ToList();
        start.Set();
        var answers = await Task.WhenAll(changes);

        Assert.All(answers, a => Assert.True(a.StatusCode == HttpStatusCode.OK, $"{(int)a.StatusCode} {a.Body}"));
        Assert.All(answers, a => Assert.Equal(a.role, JsonDocument.Parse(a.Body).RootElement.GetProperty("role").GetString()));
        // Every change bumped the version once: the user stands at the 16 changes after its first version.
        Assert.Equal(17L, await ShopData.ScalarAsync<long>(App, "identitydb", $"SELECT version FROM users WHERE id = '{id}'"));
    }

    [Fact]
    public async Task Issued_tokens_and_the_JWKS_verify_with_an_independent_JWT_library()
    {
        var (email, password) = await ShopClients.RegisterAsync(App);
        var tokens = await ShopClients.LoginAsync(App, email, password);
        var jwks = new Uri(App.GetEndpoint("gateway"), "/.well-known/jwks.json");
        const string script = """
            import json, sys, urllib.request, jwt
            token, url = sys.argv[1], sys.argv[2]
            keys = jwt.PyJWKSet.from_dict(json.load(urllib.request.urlopen(url)))
            kid = jwt.get_unverified_header(token)["kid"]
            key = next(k for k in keys.keys if k.key_id == kid)
            claims = jwt.decode(token, key.key, algorithms=["RS256"], audience="shop-api", issuer="shop-gateway")
            header = jwt.get_unverified_header(token)
            assert header["typ"] == "at+jwt" and header["alg"] == "RS256", header
            assert {"sub", "tid", "role", "jti", "exp"} <= claims.keys(), claims
            print(claims["tid"], claims["role"])
            """;
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { "-c", script, tokens.AccessToken, jwks.ToString() })
        {
            start.ArgumentList.Add(argument);
        }

        using var python = Process.Start(start)!;
        var output = await python.StandardOutput.ReadToEndAsync(Cancellation);
        var error = await python.StandardError.ReadToEndAsync(Cancellation);
        await python.WaitForExitAsync(Cancellation);

        Assert.True(python.ExitCode == 0, error);
        Assert.Equal("demo customer", output.Trim());
    }
}
