using System.Net;
using System.Net.Sockets;
using Shop.Hosting.Orchestration;

namespace Shop.Tests.Unit;

public sealed class PortAllocatorTests
{
    [Fact]
    public void Ports_come_from_below_the_range_outgoing_connections_take_theirs_from_each_once_and_free()
    {
        var ephemeralStart = PortAllocator.EphemeralRangeStart();
        var ports = Enumerable.Range(0, 50).Select(_ => PortAllocator.GetFreePort()).ToList();

        Assert.Equal(ports.Count, ports.Distinct().Count());
        Assert.All(ports, port => Assert.InRange(port, 1024, ephemeralStart - 1));
        foreach (var port in ports.Take(5))
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
        }
    }
}
