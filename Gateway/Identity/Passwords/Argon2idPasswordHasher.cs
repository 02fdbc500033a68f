using System.ComponentModel.DataAnnotations;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Shop.Gateway.Identity.Passwords;

/// <summary>The outcome of checking a password against a stored hash.</summary>
public enum PasswordVerification { Failed, Success, SuccessRehashNeeded }

/// <summary>Hashes passwords for storage and checks them against stored hashes.</summary>
public interface IPasswordHasher
{
    /// <summary>Hashes <paramref name="password"/> with a fresh random salt and returns the self-describing encoded hash.</summary>
    Task<string> HashAsync(string password, CancellationToken cancellationToken);

    /// <summary>
    /// Checks <paramref name="password"/> against <paramref name="encodedHash"/>. Returns
    /// <see cref="PasswordVerification.SuccessRehashNeeded"/> when the password matches but the hash was made with
    /// parameters other than the current ones (the caller should store a fresh hash).
    /// </summary>
    Task<PasswordVerification> VerifyAsync(string password, string encodedHash, CancellationToken cancellationToken);

    /// <summary>Costs the same as a verification, for a login whose account does not exist (no timing oracle).</summary>
    Task VerifyDummyAsync(string password, CancellationToken cancellationToken);
}

/// <summary>Argon2id cost parameters, bound from <see cref="Section"/>.</summary>
public sealed class PasswordHashingOptions
{
    public const string Section = "Identity:PasswordHashing";

    /// <summary>Argon2id t (passes over memory). 2 with 19 MiB is the OWASP minimum.</summary>
    [Range(1, 10)] public int Iterations { get; set; } = 2;

    /// <summary>Argon2id m, in KiB. 19456 KiB (19 MiB) is the OWASP minimum.</summary>
    [Range(19456, 1048576)] public int MemoryKiB { get; set; } = 19456;

    /// <summary>
    /// How many hash computations (hashing or verifying) may run at once; each holds <see cref="MemoryKiB"/> of memory
    /// and a core for its duration. Further callers wait their turn.
    /// </summary>
    [Range(1, 64)] public int MaxConcurrentHashes { get; set; } = Math.Min(Environment.ProcessorCount, 64);
}

/// <summary>
/// Argon2id (v1.3, one lane) through the system's libsodium (Debian package libsodium23). Hashes are the standard
/// encoded form <c>$argon2id$v=19$m=19456,t=2,p=1$salt$hash</c>, so stored hashes carry their own parameters and
/// remain verifiable when the options change.
/// </summary>
public sealed class Argon2idPasswordHasher : IPasswordHasher, IDisposable
{
    /// <summary>Longest accepted password, in UTF-8 bytes; Argon2 itself accepts far more, which would invite DoS.</summary>
    private const int MaxPasswordBytes = 1024;

    private const string Argon2idPrefix = "$argon2id$";

    private readonly ulong _opsLimit;
    private readonly nuint _memLimit;
    private readonly SemaphoreSlim _gate;
    private readonly Lock _dummyLock = new();
    private Task<string>? _dummyHash;
    private bool _disposed;

    public Argon2idPasswordHasher(IOptions<PasswordHashingOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var value = options.Value;
        Validator.ValidateObject(value, new ValidationContext(value), validateAllProperties: true);

        LibSodium.EnsureInitialized();

        _opsLimit = (ulong)value.Iterations;
        _memLimit = (nuint)value.MemoryKiB * 1024;
        _gate = new SemaphoreSlim(value.MaxConcurrentHashes, value.MaxConcurrentHashes);
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">The password is longer than 1024 UTF-8 bytes.</exception>
    public async Task<string> HashAsync(string password, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(password);
        ObjectDisposedException.ThrowIf(_disposed, this);

        var passwordBytes = EncodePassword(password)
            ?? throw new ArgumentException($"Passwords are limited to {MaxPasswordBytes} UTF-8 bytes.", nameof(password));
        try
        {
            return await RunGatedAsync(() => HashCore(passwordBytes), cancellationToken);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(passwordBytes);
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Never throws for bad input other than null: a malformed or non-Argon2id hash, or a password longer than
    /// 1024 UTF-8 bytes (which no hash made here can match), gives <see cref="PasswordVerification.Failed"/>.
    /// </remarks>
    public async Task<PasswordVerification> VerifyAsync(string password, string encodedHash, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(password);
        ArgumentNullException.ThrowIfNull(encodedHash);
        ObjectDisposedException.ThrowIf(_disposed, this);

        var hashBytes = EncodeHash(encodedHash);
        if (hashBytes is null)
        {
            return PasswordVerification.Failed;
        }

        var passwordBytes = EncodePassword(password);
        if (passwordBytes is null)
        {
            return PasswordVerification.Failed;
        }

        try
        {
            return await RunGatedAsync(() => VerifyCore(passwordBytes, hashBytes), cancellationToken);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(passwordBytes);
        }
    }

    /// <summary>
    /// Does the work of a verification against a hash of a random password made with the current options, so that a
    /// sign-in for an unknown user costs the same time as one for a known user. The result is always a failure and is
    /// not returned. The first call also computes that hash (once per instance).
    /// </summary>
    public async Task VerifyDummyAsync(string password, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(password);
        ObjectDisposedException.ThrowIf(_disposed, this);

        var dummyHash = await GetDummyHashAsync().WaitAsync(cancellationToken);
        await VerifyAsync(password, dummyHash, cancellationToken);
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _gate.Dispose();
    }

    private Task<string> GetDummyHashAsync()
    {
        lock (_dummyLock)
        {
            // A failed attempt (e.g. out of memory) is not cached; cancellation cannot happen as no token is passed.
            if (_dummyHash is null || _dummyHash.IsFaulted)
            {
                _dummyHash = CreateDummyHashAsync();
            }

            return _dummyHash;
        }
    }

    private async Task<string> CreateDummyHashAsync()
    {
        var randomPassword = GC.AllocateArray<byte>(32, pinned: true);
        try
        {
            RandomNumberGenerator.Fill(randomPassword);
            return await RunGatedAsync(() => HashCore(randomPassword), CancellationToken.None);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(randomPassword);
        }
    }

    /// <summary>Waits for a slot, then runs the CPU- and memory-heavy <paramref name="work"/> on the thread pool.</summary>
    private async Task<T> RunGatedAsync<T>(Func<T> work, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            // If the token fires before the work starts, it never starts; once started, the native call runs to
            // completion and is awaited, so the caller's buffers stay valid until it returns.
            return await Task.Run(work, cancellationToken);
        }
        finally
        {
            _gate.Release();
        }
    }

    private unsafe string HashCore(byte[] passwordBytes)
    {
        Span<byte> output = stackalloc byte[LibSodium.PwhashStrBytes];
        output.Clear();
        int result;
        fixed (byte* outputPtr = output)
        fixed (byte* passwordPtr = &MemoryMarshal.GetArrayDataReference(passwordBytes)) // non-null even when empty
        {
            result = LibSodium.crypto_pwhash_str_alg(
                outputPtr, passwordPtr, (ulong)passwordBytes.Length, _opsLimit, _memLimit, LibSodium.AlgArgon2id13);
        }

        if (result != 0)
        {
            throw new InvalidOperationException(
                $"Argon2id hashing failed (libsodium could not allocate {_memLimit / 1024} KiB or rejected the parameters).");
        }

        var length = output.IndexOf((byte)0);
        return Encoding.ASCII.GetString(output[..length]);
    }

    private unsafe PasswordVerification VerifyCore(byte[] passwordBytes, byte[] hashBytes)
    {
        fixed (byte* hashPtr = hashBytes)
        fixed (byte* passwordPtr = &MemoryMarshal.GetArrayDataReference(passwordBytes))
        {
            if (LibSodium.crypto_pwhash_str_verify(hashPtr, passwordPtr, (ulong)passwordBytes.Length) != 0)
            {
                return PasswordVerification.Failed;
            }

            // 0: made with the current parameters; 1: different parameters; -1: unparsable (cannot happen after a
            // successful verify, and a fresh hash would fix it anyway).
            return LibSodium.crypto_pwhash_str_needs_rehash(hashPtr, _opsLimit, _memLimit) == 0
                ? PasswordVerification.Success
                : PasswordVerification.SuccessRehashNeeded;
        }
    }

    /// <summary>The password as UTF-8 in a pinned array (so the GC leaves no copies), or null when over the limit.</summary>
    private static byte[]? EncodePassword(string password)
    {
        // Every UTF-16 char encodes to at least one UTF-8 byte, so this rejects huge inputs without scanning them.
        if (password.Length > MaxPasswordBytes)
        {
            return null;
        }

        var byteCount = Encoding.UTF8.GetByteCount(password);
        if (byteCount > MaxPasswordBytes)
        {
            return null;
        }

        var bytes = GC.AllocateArray<byte>(byteCount, pinned: true);
        Encoding.UTF8.GetBytes(password, bytes);
        return bytes;
    }

    /// <summary>The hash as NUL-terminated ASCII, or null when it cannot be an Argon2id hash made by libsodium.</summary>
    private static byte[]? EncodeHash(string encodedHash)
    {
        if (encodedHash.Length >= LibSodium.PwhashStrBytes
            || !encodedHash.StartsWith(Argon2idPrefix, StringComparison.Ordinal)
            || !Ascii.IsValid(encodedHash)
            || encodedHash.Contains('\0', StringComparison.Ordinal))
        {
            return null;
        }

        var bytes = new byte[encodedHash.Length + 1];
        Encoding.ASCII.GetBytes(encodedHash, bytes);
        return bytes;
    }
}

/// <summary>The libsodium entry points used by <see cref="Argon2idPasswordHasher"/>.</summary>
internal static unsafe partial class LibSodium
{
    private const string Library = "libsodium.so.23";
    private const string InstallHint = "libsodium23 is required: apt-get install libsodium23";

    /// <summary>crypto_pwhash_STRBYTES: size of the buffer for an encoded hash, including its NUL terminator.</summary>
    public const int PwhashStrBytes = 128;

    /// <summary>crypto_pwhash_ALG_ARGON2ID13.</summary>
    public const int AlgArgon2id13 = 2;

    private static readonly Lazy<bool> Initialization = new(Initialize, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Loads and initialises libsodium once per process; throws <see cref="InvalidOperationException"/> if it cannot.</summary>
    public static void EnsureInitialized() => _ = Initialization.Value;

    private static bool Initialize()
    {
        int initResult;
        int argon2id13;
        nuint strBytes;
        try
        {
            initResult = sodium_init();
            argon2id13 = crypto_pwhash_alg_argon2id13();
            strBytes = crypto_pwhash_strbytes();
        }
        catch (DllNotFoundException e)
        {
            throw new InvalidOperationException($"{Library} could not be loaded. {InstallHint}", e);
        }
        catch (EntryPointNotFoundException e)
        {
            throw new InvalidOperationException($"{Library} lacks Argon2id support (too old). {InstallHint}", e);
        }

        // sodium_init: 0 = initialised now, 1 = already initialised, -1 = failure.
        if (initResult < 0)
        {
            throw new InvalidOperationException($"sodium_init() failed. {InstallHint}");
        }

        if (argon2id13 != AlgArgon2id13 || strBytes != PwhashStrBytes)
        {
            throw new InvalidOperationException(
                $"{Library} reports crypto_pwhash_ALG_ARGON2ID13 = {argon2id13} and crypto_pwhash_STRBYTES = {strBytes}; "
                + $"expected {AlgArgon2id13} and {PwhashStrBytes}. {InstallHint}");
        }

        return true;
    }

    [LibraryImport(Library)]
    private static partial int sodium_init();

    [LibraryImport(Library)]
    private static partial int crypto_pwhash_alg_argon2id13();

    [LibraryImport(Library)]
    private static partial nuint crypto_pwhash_strbytes();

    /// <summary>Writes a NUL-terminated encoded hash to <paramref name="output"/> (crypto_pwhash_STRBYTES bytes); 0 on success.</summary>
    [LibraryImport(Library)]
    public static partial int crypto_pwhash_str_alg(
        byte* output, byte* password, ulong passwordLength, ulong opsLimit, nuint memLimit, int algorithm);

    /// <summary>0 when <paramref name="password"/> matches the NUL-terminated <paramref name="encodedHash"/>, -1 otherwise.</summary>
    [LibraryImport(Library)]
    public static partial int crypto_pwhash_str_verify(byte* encodedHash, byte* password, ulong passwordLength);

    /// <summary>0 when the hash was made with these parameters, 1 when not, -1 when it cannot be parsed.</summary>
    [LibraryImport(Library)]
    public static partial int crypto_pwhash_str_needs_rehash(byte* encodedHash, ulong opsLimit, nuint memLimit);
}
