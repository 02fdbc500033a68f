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
        Assert.SkipWhen(ephemeralStart < 2048, $"this machine's ephemeral range starts at {ephemeralStart}: there is no room below it");
        var ports = Enumerable.Range(0, 50).Select(_ => PortAllocator.GetFreePort()).ToList();

        Assert.Equal(ports.Count, ports.Distinct().Count());
        Assert.All(ports, port => Assert.InRange(port, 1024, Math.Min(ephemeralStart, 30000) - 1));
        foreach (var port in ports.Take(5))
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
        }
    }

    [Fact]
    public void With_no_room_below_the_ephemeral_range_the_kernel_picks_a_free_port()
    {
        var port = PortAllocator.GetFreePort(ephemeralStart: 1100);

        using var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
    }
}
