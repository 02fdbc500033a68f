using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Shop.Gateway.Forwarding;
using Shop.ServiceDefaults.Discovery;

namespace Shop.Tests.Unit;

public sealed class DestinationProberTests
{
    private static readonly Uri First = new("http://127.0.0.1:5001/");
    private static readonly Uri Second = new("http://127.0.0.1:5002/");

    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    [Fact]
    public async Task When_no_destination_passed_its_last_probe_a_recheck_asks_those_again_and_the_one_ready_now_is_picked()
    {
        var (pools, prober, replicas, clock) = Create();
        await prober.ProbeAllAsync(Cancellation);
        Assert.Null(pools.Pick("inventory", clock.GetUtcNow(), []));

        replicas.Ready[First.Port] = true;
        replicas.Asked.Clear();
        await prober.RecheckAsync("inventory", Cancellation);

        Assert.Equal([First.Port, Second.Port], replicas.Asked.Order());
        Assert.Equal(First, pools.Pick("inventory", clock.GetUtcNow(), [])?.Address);

        // Only those that failed their last probe are asked again.
        replicas.Asked.Clear();
        clock.Advance(DestinationProber.RecheckSpacing);
        await prober.RecheckAsync("inventory", Cancellation);
        Assert.Equal([Second.Port], replicas.Asked);
    }

    [Fact]
    public async Task Callers_at_the_same_time_share_one_recheck_and_the_next_starts_no_sooner_than_the_spacing_allows()
    {
        var (_, prober, replicas, clock) = Create();
        await prober.ProbeAllAsync(Cancellation);
        replicas.Asked.Clear();
        replicas.Hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var callers = Enumerable.Range(0, 20).Select(_ => prober.RecheckAsync("inventory", Cancellation)).ToList();
        Assert.All(callers, c => Assert.False(c.IsCompleted));
        replicas.Hold.SetResult();
        await Task.WhenAll(callers);
        Assert.Equal(2, replicas.Asked.Count);

        // Within the spacing of that recheck's start: its result stands, nothing is asked.
        clock.Advance(DestinationProber.RecheckSpacing - TimeSpan.FromMilliseconds(1));
        await prober.RecheckAsync("inventory", Cancellation);
        Assert.Equal(2, replicas.Asked.Count);

        clock.Advance(TimeSpan.FromMilliseconds(1));
        await prober.RecheckAsync("inventory", Cancellation);
        Assert.Equal(4, replicas.Asked.Count);
    }

    [Fact]
    public async Task A_caller_that_stops_waiting_does_not_stop_the_recheck_the_others_wait_for()
    {
        var (pools, prober, replicas, clock) = Create();
        await prober.ProbeAllAsync(Cancellation);
        replicas.Hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        replicas.Ready[Second.Port] = true;

        using var gone = new CancellationTokenSource();
        var leaving = prober.RecheckAsync("inventory", gone.Token);
        var staying = prober.RecheckAsync("inventory", Cancellation);
        await gone.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leaving);

        replicas.Hold.SetResult();
        await staying;
        Assert.Equal(Second, pools.Pick("inventory", clock.GetUtcNow(), [])?.Address);
    }

    [Fact]
    public async Task An_ejected_destination_that_passes_a_recheck_is_let_back_in_and_its_next_failure_ejects_it_again()
    {
        var (pools, prober, replicas, clock) = Create();
        replicas.Ready[First.Port] = true;
        replicas.Ready[Second.Port] = true;
        await prober.ProbeAllAsync(Cancellation);
        foreach (var destination in pools.All("inventory"))
        {
            for (var failure = 0; failure < 3; failure++)
            {
                destination.ReportFailure(clock.GetUtcNow(), failuresToEject: 3, TimeSpan.FromSeconds(10));
            }
        }

        Assert.Null(pools.Pick("inventory", clock.GetUtcNow(), []));
        replicas.Ready[Second.Port] = false;
        replicas.Asked.Clear();
        await prober.RecheckAsync("inventory", Cancellation);

        // Both ejected ones were asked (they had passed their last probe); the one that passed again is back.
        Assert.Equal([First.Port, Second.Port], replicas.Asked.Order());
        var back = pools.Pick("inventory", clock.GetUtcNow(), []);
        Assert.Equal(First, back?.Address);
        Assert.Null(pools.Pick("inventory", clock.GetUtcNow(), [back!]));
        back!.ReportFailure(clock.GetUtcNow(), failuresToEject: 3, TimeSpan.FromSeconds(10));
        Assert.True(back.IsEjected(clock.GetUtcNow()));
    }

    private static (DestinationPools Pools, DestinationProber Prober, Replicas Replicas, FakeTimeProvider Clock) Create()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(
        [
            KeyValuePair.Create("services:inventory:http:0", (string?)First.ToString()),
            KeyValuePair.Create("services:inventory:http:1", (string?)Second.ToString()),
        ]).Build();
        var pools = new DestinationPools(new ServiceEndpointResolver(configuration));
        pools.All("inventory");
        var replicas = new Replicas();
        var clock = new FakeTimeProvider();
        return (pools, new DestinationProber(pools, clock, NullLogger<DestinationProber>.Instance, replicas), replicas, clock);
    }

    /// <summary>Answers each /health with 200 if its port is marked ready and 503 otherwise, optionally held until released.</summary>
    private sealed class Replicas : HttpMessageHandler
    {
        public ConcurrentDictionary<int, bool> Ready { get; } = new();

        public ConcurrentQueue<int> Asked { get; } = new();

        public TaskCompletionSource? Hold { get; set; }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Asked.Enqueue(request.RequestUri!.Port);
            if (Hold is { } hold)
            {
                await hold.Task.WaitAsync(cancellationToken);
            }

            return new HttpResponseMessage(Ready.GetValueOrDefault(request.RequestUri.Port) ? HttpStatusCode.OK : HttpStatusCode.ServiceUnavailable);
        }
    }
}
