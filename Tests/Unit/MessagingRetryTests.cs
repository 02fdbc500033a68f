using System.Text;
using Microsoft.Extensions.Configuration;
using RabbitMQ.Client;
using Shop.ServiceDefaults.Messaging;
using Shop.ServiceDefaults.Messaging.DeadLetters;

namespace Shop.Tests.Unit;

public sealed class MessagingRetryTests
{
    private static readonly RetryPlan Plan = new ConsumerOptions("notifications", "notifications.orders", "orders.events", ["order.*"]).RetryPlan;

    [Fact]
    public void By_default_a_failed_message_is_retried_after_1_5_and_25_seconds()
    {
        Assert.Equal(
            [("notifications.orders.retry.1", TimeSpan.FromSeconds(1)), ("notifications.orders.retry.2", TimeSpan.FromSeconds(5)), ("notifications.orders.retry.3", TimeSpan.FromSeconds(25))],
            Plan.RetryQueues);
    }

    [Fact]
    public void Each_failure_moves_the_message_to_the_next_retry_queue_then_to_the_dead_letter_queue()
    {
        Assert.Equal(new FailureRoute("notifications.orders.retry.1", 1, IsDeadLetter: false), Plan.AfterFailure(0));
        Assert.Equal(new FailureRoute("notifications.orders.retry.2", 2, IsDeadLetter: false), Plan.AfterFailure(1));
        Assert.Equal(new FailureRoute("notifications.orders.retry.3", 3, IsDeadLetter: false), Plan.AfterFailure(2));

        var last = Plan.AfterFailure(3);

        Assert.Equal(new FailureRoute("notifications.orders.dlq", 3, IsDeadLetter: true), last);
        Assert.Equal(4, last.Attempts);
    }

    [Fact]
    public void A_message_that_met_an_outage_waits_longer_each_time_keeps_its_retries_and_is_never_dead_lettered()
    {
        Assert.Equal(new FailureRoute("notifications.orders.retry.1", 0, IsDeadLetter: false), Plan.AfterOutage(0, 0));
        Assert.Equal(new FailureRoute("notifications.orders.retry.2", 2, IsDeadLetter: false), Plan.AfterOutage(1, 2));
        Assert.Equal(new FailureRoute("notifications.orders.retry.3", 3, IsDeadLetter: false), Plan.AfterOutage(2, 3));
        Assert.Equal(new FailureRoute("notifications.orders.retry.3", 3, IsDeadLetter: false), Plan.AfterOutage(500, 3));
        Assert.Equal([TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(25), TimeSpan.FromSeconds(25)],
            new[] { 0, 1, 2, 500 }.Select(Plan.DelayAfterOutage));
        Assert.Null(new RetryPlan("q", []).AfterOutage(0, 0));
    }

    [Fact]
    public void An_outage_is_counted_in_its_own_header_and_leaves_the_retries_alone_until_a_replay_clears_both()
    {
        var headers = MessageHeaders.ForRetry(new Dictionary<string, object?> { ["x-death"] = "broker" }, 2);

        var waited = MessageHeaders.ForOutage(headers, MessageHeaders.OutagesOf(headers) + 1);

        Assert.Equal(2, MessageHeaders.RetriesOf(waited));
        Assert.Equal(1, MessageHeaders.OutagesOf(waited));
        Assert.DoesNotContain("x-death", waited.Keys);
        Assert.Equal(2, MessageHeaders.OutagesOf(MessageHeaders.ForOutage(waited, MessageHeaders.OutagesOf(waited) + 1)));
        var replayed = MessageHeaders.ForReplay(waited);
        Assert.Equal(0, MessageHeaders.RetriesOf(replayed));
        Assert.Equal(0, MessageHeaders.OutagesOf(replayed));
    }

    [Fact]
    public void Without_retry_delays_the_first_failure_is_dead_lettered()
    {
        var route = new RetryPlan("q", []).AfterFailure(0);

        Assert.True(route.IsDeadLetter);
        Assert.Equal(1, route.Attempts);
    }

    [Fact]
    public void Retry_delays_come_from_the_consumers_section_then_the_services_then_the_code()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Messaging:RetryDelays"] = "00:00:00.200, 00:00:00.500",
            ["Messaging:Consumers:special:RetryDelays:0"] = "00:00:02",
        }).Build();

        Assert.Equal([TimeSpan.FromSeconds(2)], RabbitMqExtensions.ConfiguredRetryDelays(configuration, "special"));
        Assert.Equal([TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(500)], RabbitMqExtensions.ConfiguredRetryDelays(configuration, "other"));
        Assert.Null(RabbitMqExtensions.ConfiguredRetryDelays(new ConfigurationBuilder().Build(), "other"));
    }

    [Theory]
    [InlineData("soon")]
    [InlineData("00:00:00")]
    [InlineData("-00:00:01")]
    public void A_retry_delay_that_is_not_a_positive_time_span_stops_the_start(string value)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Messaging:RetryDelays"] = value }).Build();

        Assert.Throws<InvalidOperationException>(() => RabbitMqExtensions.ConfiguredRetryDelays(configuration, "c"));
    }

    [Fact]
    public void A_retry_keeps_the_headers_counts_the_attempt_and_drops_the_brokers_bookkeeping()
    {
        var received = new Dictionary<string, object?>
        {
            ["traceparent"] = "00-abc-def-01"u8.ToArray(),
            [MessageHeaders.Attempt] = 1,
            ["x-death"] = new List<object?>(),
            ["x-first-death-reason"] = "expired"u8.ToArray(),
        };

        var headers = MessageHeaders.ForRetry(received, 2);

        Assert.Equal(2, MessageHeaders.RetriesOf(headers));
        Assert.Equal("00-abc-def-01", MessageHeaders.Text(headers, "traceparent"));
        Assert.False(headers.ContainsKey("x-death"));
        Assert.False(headers.ContainsKey("x-first-death-reason"));
        Assert.Equal(0, MessageHeaders.RetriesOf(null));
        Assert.Equal(3, MessageHeaders.RetriesOf(new Dictionary<string, object?> { [MessageHeaders.Attempt] = "3"u8.ToArray() }));
    }

    [Fact]
    public void A_dead_letter_says_why_when_from_where_and_after_how_many_attempts_and_a_replay_resets_that()
    {
        var failedAt = new DateTimeOffset(2025, 3, 1, 12, 0, 0, TimeSpan.Zero);
        var headers = MessageHeaders.ForDeadLetter(new Dictionary<string, object?> { [MessageHeaders.Attempt] = 3, ["x-correlation-id"] = "c-1" },
            "notifications.orders", 4, new InvalidOperationException("boom"), failedAt);

        Assert.Equal("InvalidOperationException: boom", headers[MessageHeaders.Reason]);
        Assert.Equal("System.InvalidOperationException", headers[MessageHeaders.ExceptionType]);
        Assert.Equal("2025-03-01T12:00:00.0000000+00:00", headers[MessageHeaders.FailedAt]);
        Assert.Equal("notifications.orders", headers[MessageHeaders.OriginalQueue]);
        Assert.Equal(4, headers[MessageHeaders.Attempts]);

        Assert.Equal("InvalidOperationException: outer ---> TimeoutException: inner",
            MessageHeaders.Describe(new InvalidOperationException("outer", new TimeoutException("inner"))));

        var replay = MessageHeaders.ForReplay(headers);

        Assert.Equal(["x-correlation-id"], replay.Keys);
    }

    [Fact]
    public void A_dead_letter_is_read_from_its_properties_headers_and_envelope()
    {
        var eventId = Guid.NewGuid();
        var body = Encoding.UTF8.GetBytes($$"""{"data":{},"eventId":"{{eventId}}","eventType":"order.created","tenantId":"demo"}""");
        var properties = new BasicProperties
        {
            MessageId = eventId.ToString(),
            Headers = MessageHeaders.ForDeadLetter(null, "notifications.orders", 4, "System.TimeoutException", "TimeoutException: slow", DateTimeOffset.UnixEpoch)
                .ToDictionary(h => h.Key, h => h.Value is string s ? (object?)Encoding.UTF8.GetBytes(s) : h.Value),
        };

        var letter = DeadLetter.Read("notifications.orders.dlq", "notifications.orders", properties, body);

        Assert.Equal(eventId.ToString(), letter.MessageId);
        Assert.Equal("order.created", letter.EventType);
        Assert.Equal("demo", letter.TenantId);
        Assert.Equal("TimeoutException: slow", letter.Reason);
        Assert.Equal(DateTimeOffset.UnixEpoch, letter.FailedAt);
        Assert.Equal(4, letter.Attempts);
        Assert.Equal("notifications.orders", letter.OriginalQueue);
    }

    [Fact]
    public void A_dead_letter_without_id_or_envelope_is_named_by_its_content()
    {
        var first = DeadLetter.Read("q.dlq", "q", new BasicProperties(), "not json"u8.ToArray());
        var second = DeadLetter.Read("q.dlq", "q", new BasicProperties(), "not json"u8.ToArray());

        Assert.StartsWith("sha256-", first.MessageId, StringComparison.Ordinal);
        Assert.Equal(first.MessageId, second.MessageId);
        Assert.Null(first.TenantId);
        Assert.Null(first.Reason);
    }
}
