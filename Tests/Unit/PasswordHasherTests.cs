using System.ComponentModel.DataAnnotations;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using Shop.Gateway.Identity.Passwords;

namespace Shop.Tests.Unit;

public sealed class PasswordHasherTests
{
    private static Argon2idPasswordHasher Hasher(int iterations = 2, int memoryKiB = 19456, int maxConcurrentHashes = 2) =>
        new(Options.Create(new PasswordHashingOptions
        {
            Iterations = iterations,
            MemoryKiB = memoryKiB,
            MaxConcurrentHashes = maxConcurrentHashes,
        }));

    [Fact]
    public async Task A_password_verifies_against_its_own_hash()
    {
        var ct = TestContext.Current.CancellationToken;
        using var hasher = Hasher();

        var hash = await hasher.HashAsync("correct horse battery staple", ct);

        Assert.Equal(PasswordVerification.Success, await hasher.VerifyAsync("correct horse battery staple", hash, ct));
    }

    [Fact]
    public async Task A_wrong_password_fails_verification()
    {
        var ct = TestContext.Current.CancellationToken;
        using var hasher = Hasher();

        var hash = await hasher.HashAsync("correct horse battery staple", ct);

        Assert.Equal(PasswordVerification.Failed, await hasher.VerifyAsync("correct horse battery stapler", hash, ct));
        Assert.Equal(PasswordVerification.Failed, await hasher.VerifyAsync("", hash, ct));
    }

    [Fact]
    public async Task The_encoded_hash_is_Argon2id_v13_with_19_MiB_2_passes_and_1_lane()
    {
        using var hasher = Hasher();

        var hash = await hasher.HashAsync("p@ssw0rd", TestContext.Current.CancellationToken);

        // 16-byte salt and 32-byte hash, base64 without padding.
        Assert.Matches(new Regex(@"^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$"), hash);
    }

    [Fact]
    public async Task Two_hashes_of_the_same_password_differ_because_of_the_salt()
    {
        var ct = TestContext.Current.CancellationToken;
        using var hasher = Hasher();

        var first = await hasher.HashAsync("same password", ct);
        var second = await hasher.HashAsync("same password", ct);

        Assert.NotEqual(first, second);
        Assert.Equal(PasswordVerification.Success, await hasher.VerifyAsync("same password", first, ct));
        Assert.Equal(PasswordVerification.Success, await hasher.VerifyAsync("same password", second, ct));
    }

    [Fact]
    public async Task A_hash_made_with_weaker_options_verifies_but_asks_for_a_rehash_under_stronger_options()
    {
        var ct = TestContext.Current.CancellationToken;
        using var weak = Hasher(iterations: 1);
        using var strong = Hasher(iterations: 3, memoryKiB: 2 * 19456);

        var weakHash = await weak.HashAsync("upgrade me", ct);

        Assert.StartsWith("$argon2id$v=19$m=19456,t=1,p=1$", weakHash);
        Assert.Equal(PasswordVerification.SuccessRehashNeeded, await strong.VerifyAsync("upgrade me", weakHash, ct));
        Assert.Equal(PasswordVerification.Failed, await strong.VerifyAsync("wrong", weakHash, ct));
        Assert.Equal(PasswordVerification.Success, await weak.VerifyAsync("upgrade me", weakHash, ct));
    }

    [Theory]
    [InlineData("")]
    [InlineData("not a hash")]
    [InlineData("$argon2id$")]
    [InlineData("$argon2id$v=19$m=19456,t=2,p=1$")]
    [InlineData("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA")]
    [InlineData("$argon2id$v=19$m=abc,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE")]
    [InlineData("$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE")]
    [InlineData("$2y$10$YCFsG6elYca568hBi2pZ0.3LDL5wjgxct1N8w/oLR/jfHsiQwCqTS")]
    [InlineData("$argon2id$v=19$m=19456,t=2,p=1$sält$hash")]
    public async Task A_malformed_hash_fails_verification_without_throwing(string encodedHash)
    {
        using var hasher = Hasher();

        Assert.Equal(PasswordVerification.Failed,
            await hasher.VerifyAsync("password", encodedHash, TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task A_valid_hash_with_anything_after_an_embedded_NUL_or_an_oversized_hash_fails()
    {
        var ct = TestContext.Current.CancellationToken;
        using var hasher = Hasher();
        var hash = await hasher.HashAsync("password", ct);

        Assert.Equal(PasswordVerification.Failed, await hasher.VerifyAsync("password", hash + "\0junk", ct));
        Assert.Equal(PasswordVerification.Failed, await hasher.VerifyAsync("password", hash + new string('A', 200), ct));
    }

    [Fact]
    public async Task Eight_concurrent_hashes_with_one_slot_all_complete_and_verify()
    {
        var ct = TestContext.Current.CancellationToken;
        using var hasher = Hasher(maxConcurrentHashes: 1);
        var passwords = Enumerable.Range(0, 8).Select(i => $"password-{i}").ToArray();

        var hashes = await Task.WhenAll(passwords.Select(p => hasher.HashAsync(p, ct)));

        Assert.Equal(8, hashes.Distinct().Count());
        for (var i = 0; i < passwords.Length; i++)
        {
            Assert.Equal(PasswordVerification.Success, await hasher.VerifyAsync(passwords[i], hashes[i], ct));
        }
    }

    [Fact]
    public async Task Passwords_over_1024_UTF8_bytes_are_refused()
    {
        var ct = TestContext.Current.CancellationToken;
        using var hasher = Hasher();

        var atLimit = await hasher.HashAsync(new string('a', 1024), ct);
        Assert.Equal(PasswordVerification.Success, await hasher.VerifyAsync(new string('a', 1024), atLimit, ct));

        await Assert.ThrowsAsync<ArgumentException>(() => hasher.HashAsync(new string('a', 1025), ct));
        // 342 three-byte characters: only 342 chars but 1026 bytes.
        await Assert.ThrowsAsync<ArgumentException>(() => hasher.HashAsync(new string('€', 342), ct));
        await Assert.ThrowsAsync<ArgumentException>(() => hasher.HashAsync(new string('a', 10_000_000), ct));
        // Verification cannot match a hash made here, so it fails rather than throwing at the sign-in endpoint.
        Assert.Equal(PasswordVerification.Failed, await hasher.VerifyAsync(new string('a', 1025), atLimit, ct));
    }

    [Fact]
    public async Task Non_ASCII_and_empty_passwords_round_trip()
    {
        var ct = TestContext.Current.CancellationToken;
        using var hasher = Hasher();
        const string password = "p\u00e4ssw\u00f6rd-пароль-密码-🔐";
        const string decomposed = "pa\u0308sswo\u0308rd-пароль-密码-🔐"; // the same text in Unicode form D

        var hash = await hasher.HashAsync(password, ct);
        var empty = await hasher.HashAsync("", ct);

        Assert.Equal(PasswordVerification.Success, await hasher.VerifyAsync(password, hash, ct));
        // The bytes are hashed as given: no Unicode normalisation happens here.
        Assert.Equal(PasswordVerification.Failed, await hasher.VerifyAsync(decomposed, hash, ct));
        Assert.Equal(PasswordVerification.Success, await hasher.VerifyAsync("", empty, ct));
        Assert.Equal(PasswordVerification.Failed, await hasher.VerifyAsync(" ", empty, ct));
    }

    [Fact]
    public async Task Null_arguments_are_rejected()
    {
        var ct = TestContext.Current.CancellationToken;
        using var hasher = Hasher();

        await Assert.ThrowsAsync<ArgumentNullException>(() => hasher.HashAsync(null!, ct));
        await Assert.ThrowsAsync<ArgumentNullException>(() => hasher.VerifyAsync(null!, "$argon2id$", ct));
        await Assert.ThrowsAsync<ArgumentNullException>(() => hasher.VerifyAsync("password", null!, ct));
    }

    [Fact]
    public async Task A_cancelled_caller_does_not_start_a_hash()
    {
        using var hasher = Hasher();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => hasher.HashAsync("password", cts.Token));
    }

    [Fact]
    public async Task The_dummy_verification_for_unknown_users_completes_repeatedly()
    {
        var ct = TestContext.Current.CancellationToken;
        using var hasher = Hasher();

        await hasher.VerifyDummyAsync("whatever", ct);
        await hasher.VerifyDummyAsync("whatever else", ct);
    }

    [Fact]
    public void Options_outside_their_ranges_are_rejected()
    {
        Assert.Throws<ValidationException>(() => Hasher(iterations: 0));
        Assert.Throws<ValidationException>(() => Hasher(memoryKiB: 8192));
        Assert.Throws<ValidationException>(() => Hasher(maxConcurrentHashes: 0));
    }
}
