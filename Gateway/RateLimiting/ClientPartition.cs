using System.Net;
using System.Net.Sockets;

namespace Shop.Gateway.RateLimiting;

/// <summary>The rate-limit partition of a client that has no token: its address.</summary>
public static class ClientPartition
{
    /// <summary>
    /// An IPv4 client is its address; an IPv6 client is its /64. One subscriber is usually given a whole /64, so keying on
    /// the full address would give a client that changes its address within it a fresh limit each time.
    /// </summary>
    public static string Of(IPAddress? address)
    {
        if (address is null)
        {
            return "unknown";
        }

        // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; one client must map to one partition.
        if (address.IsIPv4MappedToIPv6)
        {
            return address.MapToIPv4().ToString();
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return address.ToString();
        }

        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        return $"{new IPAddress(bytes)}/64";
    }
}
