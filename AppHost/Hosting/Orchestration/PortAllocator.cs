using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Shop.Hosting.Orchestration;

/// <summary>
/// Loopback ports for the run's servers, from below the kernel's ephemeral range. The kernel takes the source port of
/// every outgoing connection (and the port of a bind to port 0) from that range, so a port picked there can be taken
/// by some client's connection before its server binds it, or between a server's exit and its restart, and the server
/// cannot bind it while that connection lives. (RabbitMQ's distribution port was, in a CI run: the broker failed at
/// every restart and the whole run with it.) Ports are picked at random in the span, so that two AppHosts on one
/// machine, which do not see each other's picks, rarely pick the same one.
/// </summary>
internal static class PortAllocator
{
    private const string EphemeralRangeFile = "/proc/sys/net/ipv4/ip_local_port_range";
    private const int DefaultEphemeralStart = 32768;
    private const int Span = 12_000;

    /// <summary>Kubernetes' NodePorts start here: on a node, kube-proxy may take local connections to them.</summary>
    private const int Ceiling = 30000;

    private static readonly HashSet<int> Handed = [];

    /// <summary>A loopback port that is free now, below the ephemeral range, and not handed out before by this process.</summary>
    public static int GetFreePort() => GetFreePort(EphemeralRangeStart());

    internal static int GetFreePort(int ephemeralStart)
    {
        var last = Math.Min(ephemeralStart, Ceiling) - 1;
        var first = Math.Max(1024, last - Span);
        lock (Handed)
        {
            for (var attempt = 0; last - first >= 100 && attempt < 1000; attempt++)
            {
                var port = Random.Shared.Next(first, last + 1);
                if (!Handed.Contains(port) && IsFree(port))
                {
                    Handed.Add(port);
                    return port;
                }
            }

            // No room below the range (it was configured to start low): the kernel's choice, as a last resort.
            while (true)
            {
                using var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                var port = ((IPEndPoint)listener.LocalEndpoint).Port;
                listener.Stop();
                if (Handed.Add(port))
                {
                    return port;
                }
            }
        }
    }

    internal static int EphemeralRangeStart()
    {
        try
        {
            var first = File.ReadAllText(EphemeralRangeFile).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)[0];
            return int.Parse(first, CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return DefaultEphemeralStart;
        }
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            listener.Stop();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
