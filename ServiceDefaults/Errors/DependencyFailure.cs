using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Shop.ServiceDefaults.Errors;

/// <summary>
/// Which failures are a dependency's, not this code's: an HTTP request answers them 503, and an event consumer
/// does not count them against the event.
/// </summary>
internal static class DependencyFailure
{
    /// <summary>
    /// A dependency this service calls failed or is unreachable: not the caller's fault, and not a defect here. For
    /// PostgreSQL that is also a server going away under a statement (administrator or crash shutdown, still starting,
    /// refusing a connection past its max_connections),
    /// any connection exception (class 08), which Npgsql does not all count as transient, and the statement timeout.
    /// EF Core wraps what fails under SaveChanges.
    /// </summary>
    public static bool Is(Exception exception) => Unwrap(exception) is HttpRequestException
        or Polly.CircuitBreaker.BrokenCircuitException or Polly.Timeout.TimeoutRejectedException
        or StackExchange.Redis.RedisException or TimeoutException or NpgsqlException { IsTransient: true }
        or PostgresException { SqlState: PostgresErrorCodes.QueryCanceled } || IsOutage(exception);

    /// <summary>
    /// The dependency could not be reached or went away: whatever the work was, it was not tried, so trying it again
    /// later is all there is to do. That includes a connection that could not be had in time (the pool exhausted, a
    /// server that does not answer), which was never used. A statement timeout is not an outage, nor is a statement's
    /// answer that did not come in time: the server may have worked on it, and the same work may time out every time.
    /// </summary>
    public static bool IsOutage(Exception exception) => Unwrap(exception) switch
    {
        PostgresException postgres => IsConnectionLost(postgres)
            || postgres.SqlState is PostgresErrorCodes.CannotConnectNow or PostgresErrorCodes.TooManyConnections,
        NpgsqlException { IsTransient: true } npgsql => npgsql.InnerException is not TimeoutException || !IsWaitForAnswer(npgsql),
        StackExchange.Redis.RedisConnectionException or HttpRequestException or Polly.CircuitBreaker.BrokenCircuitException => true,
        _ => false,
    };

    /// <summary>
    /// The server ended the connection (shut down, crashed), or it broke or could not be made: every connection to that
    /// server is as dead. Not a statement or a wait that took too long.
    /// </summary>
    public static bool IsConnectionLost(Exception exception) => Unwrap(exception) switch
    {
        PostgresException postgres => postgres.SqlState is PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown or ['0', '8', ..],
        NpgsqlException { InnerException: IOException or System.Net.Sockets.SocketException } => true,
        _ => false,
    };

    /// <summary>
    /// Npgsql ran out of time reading a statement's answer (its words for it since version 3); every other timeout of
    /// its own is while opening a connection or waiting for one from the pool. Opening reads too (the server's answer
    /// to the start-up), and when the read's own timer fires before the open's, the words are the same: an open's
    /// frames in the exception's trace tell it apart (a CI run met a server that accepted and never answered so).
    /// </summary>
    private static bool IsWaitForAnswer(NpgsqlException exception) =>
        exception.Message.StartsWith("Exception while reading from stream", StringComparison.Ordinal)
        && exception.StackTrace?.Contains("Npgsql.Internal.NpgsqlConnector.Open(", StringComparison.Ordinal) != true;

    /// <summary>What failed under EF Core's <c>DbUpdateException</c>, or the exception itself.</summary>
    internal static Exception Unwrap(Exception exception) =>
        exception is DbUpdateException { InnerException: { } inner } ? Unwrap(inner) : exception;
}
