using Google.Protobuf;
using Shop.Hosting.Dashboard.Otlp;

namespace Shop.Tests.Unit;

public sealed class OtlpTraceDecoderTests
{
    private static readonly byte[] TraceA = [0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0xFF];
    private static readonly byte[] RootId = [0xAA, 0xBB, 0xCC, 0xDD, 0x00, 0x01, 0x02, 0x03];
    private static readonly byte[] ChildId = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];

    // 2024-01-01T00:00:00Z in Unix nanoseconds.
    private const ulong BaseNanos = 1_704_067_200_000_000_000;
    private static readonly DateTimeOffset BaseTime = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Decodes_spans_with_their_service_and_parent()
    {
        var request = Request(
            ResourceSpans("orders", "orders-1", "Shop.Orders",
                Span(TraceA, RootId, parentId: null, "POST /orders", kind: 2, BaseNanos, BaseNanos + 50_000_000)),
            ResourceSpans("inventory", instanceId: null, "Shop.Inventory",
                Span(TraceA, ChildId, RootId, "reserve stock", kind: 3, BaseNanos + 10_000_000, BaseNanos + 30_000_000)));

        var spans = OtlpTraceDecoder.Decode(request);

        Assert.Equal(2, spans.Count);
        var root = spans[0];
        Assert.Equal("0a0b0c0d0e0f101112131415161718ff", root.TraceId);
        Assert.Equal("aabbccdd00010203", root.SpanId);
        Assert.Null(root.ParentSpanId);
        Assert.Equal("POST /orders", root.Name);
        Assert.Equal(SpanKindCode.Server, root.Kind);
        Assert.Equal("orders", root.ServiceName);
        Assert.Equal("orders-1", root.ServiceInstanceId);
        Assert.Equal("Shop.Orders", root.ScopeName);
        Assert.Equal(BaseTime, root.Start);
        Assert.Equal(TimeSpan.FromMilliseconds(50), root.Duration);
        Assert.Equal(SpanStatusCode.Unset, root.Status);

        var child = spans[1];
        Assert.Equal(root.TraceId, child.TraceId);
        Assert.Equal("1122334455667788", child.SpanId);
        Assert.Equal(root.SpanId, child.ParentSpanId);
        Assert.Equal(SpanKindCode.Client, child.Kind);
        Assert.Equal("inventory", child.ServiceName);
        Assert.Null(child.ServiceInstanceId);
        Assert.Equal("Shop.Inventory", child.ScopeName);
        Assert.Equal(BaseTime.AddMilliseconds(10), child.Start);
        Assert.Equal(TimeSpan.FromMilliseconds(20), child.Duration);
    }

    [Fact]
    public void Decodes_string_int_bool_and_double_attributes_as_invariant_text()
    {
        var span = Span(TraceA, RootId, parentId: null, "GET /items", kind: 2, BaseNanos, BaseNanos + 1,
            Attribute("http.route", StringValue("/items/{id}")),
            Attribute("http.status_code", IntValue(404)),
            Attribute("retry.count", IntValue(-3)),
            Attribute("cache.hit", BoolValue(true)),
            Attribute("ratio", new Proto().Double(4, 0.25)));

        var decoded = Assert.Single(OtlpTraceDecoder.Decode(Request(ResourceSpans("gateway", null, "scope", span))));

        Assert.Equal("/items/{id}", decoded.Attributes["http.route"]);
        Assert.Equal("404", decoded.Attributes["http.status_code"]);
        Assert.Equal("-3", decoded.Attributes["retry.count"]);
        Assert.Equal("true", decoded.Attributes["cache.hit"]);
        Assert.Equal("0.25", decoded.Attributes["ratio"]);
        Assert.DoesNotContain("service.name", decoded.Attributes.Keys);
    }

    [Fact]
    public void Renders_array_kvlist_and_bytes_attributes_as_short_text()
    {
        var array = new Proto().Message(5, new Proto().Message(1, StringValue("a")).Message(1, IntValue(2)));
        var kvlist = new Proto().Message(6, new Proto().Message(1, Attribute("k", BoolValue(false))));
        var bytes = new Proto().Bytes(7, [1, 2, 3]);
        var span = Span(TraceA, RootId, parentId: null, "work", kind: 1, BaseNanos, BaseNanos,
            Attribute("list", array), Attribute("map", kvlist), Attribute("raw", bytes));

        var decoded = Assert.Single(OtlpTraceDecoder.Decode(Request(ResourceSpans("svc", null, "scope", span))));

        Assert.Equal("[a, 2]", decoded.Attributes["list"]);
        Assert.Equal("{k: false}", decoded.Attributes["map"]);
        Assert.Equal("AQID", decoded.Attributes["raw"]);
    }

    [Fact]
    public void Decodes_error_status()
    {
        var status = new Proto().String(2, "boom").Varint(3, 2);
        var span = Span(TraceA, RootId, parentId: null, "fails", kind: 1, BaseNanos, BaseNanos + 1).Message(15, status);

        var decoded = Assert.Single(OtlpTraceDecoder.Decode(Request(ResourceSpans("orders", null, "scope", span))));

        Assert.Equal(SpanStatusCode.Error, decoded.Status);
    }

    [Fact]
    public void Skips_unknown_fields_at_every_level()
    {
        var span = new Proto()
            .Varint(99, 12345)
            .Bytes(1, TraceA)
            .String(3, "vendor=state")
            .Fixed32(16, 0x0101)
            .Bytes(2, RootId)
            .String(5, "kept")
            .Message(11, new Proto().Fixed64(1, BaseNanos).String(2, "event"))
            .String(1000, "unknown length-delimited")
            .Fixed64(7, BaseNanos)
            .Fixed64(8, BaseNanos + 1_000_000)
            .Group(40, new Proto().Varint(1, 7).Group(2, new Proto().String(3, "nested group")));
        var scopeSpans = new Proto()
            .String(3, "https://schema")
            .Message(2, span)
            .Message(1, new Proto().String(1, "my.scope").String(2, "1.0.0"));
        var resourceSpans = new Proto()
            .Message(2, scopeSpans)
            .Varint(17, 1)
            .Message(1, Resource("late-resource", null).Varint(2, 4));
        var request = new Proto().Fixed32(42, 7).Message(1, resourceSpans).Fixed64(43, 9).ToArray();

        var decoded = Assert.Single(OtlpTraceDecoder.Decode(request));

        Assert.Equal("kept", decoded.Name);
        Assert.Equal("late-resource", decoded.ServiceName);
        Assert.Equal("my.scope", decoded.ScopeName);
        Assert.Equal(TimeSpan.FromMilliseconds(1), decoded.Duration);
        Assert.Empty(decoded.Attributes);
    }

    [Fact]
    public void Treats_an_empty_parent_id_as_no_parent_and_defaults_the_service_name()
    {
        var span = Span(TraceA, RootId, parentId: [], "root", kind: 0, BaseNanos, BaseNanos);
        var resourceSpans = new Proto().Message(2, ScopeSpans("scope", span));

        var decoded = Assert.Single(OtlpTraceDecoder.Decode(Request(resourceSpans)));

        Assert.Null(decoded.ParentSpanId);
        Assert.Equal("unknown", decoded.ServiceName);
        Assert.Null(decoded.ServiceInstanceId);
        Assert.Equal(SpanKindCode.Unspecified, decoded.Kind);
    }

    [Fact]
    public void Decodes_an_empty_request_to_no_spans()
    {
        Assert.Empty(OtlpTraceDecoder.Decode(Array.Empty<byte>()));
    }

    [Fact]
    public void Truncated_input_throws_InvalidProtocolBufferException()
    {
        var request = SampleRequest();

        Assert.Throws<InvalidProtocolBufferException>(() => OtlpTraceDecoder.Decode(request[..^1]));
        Assert.Throws<InvalidProtocolBufferException>(() => OtlpTraceDecoder.Decode(request[..(request.Length / 2)]));
    }

    [Fact]
    public void Every_prefix_of_a_request_either_decodes_or_throws_InvalidProtocolBufferException()
    {
        var request = SampleRequest();

        for (var length = 0; length < request.Length; length++)
        {
            var exception = Record.Exception(() => OtlpTraceDecoder.Decode(request[..length]));
            Assert.True(exception is null or InvalidProtocolBufferException, $"prefix {length}: {exception}");
        }
    }

    [Fact]
    public void Corrupted_bytes_either_decode_or_throw_InvalidProtocolBufferException()
    {
        var request = SampleRequest();
        var random = new Random(20240101);

        for (var round = 0; round < 2000; round++)
        {
            var corrupted = (byte[])request.Clone();
            var flips = random.Next(1, 4);
            for (var i = 0; i < flips; i++)
            {
                corrupted[random.Next(corrupted.Length)] = (byte)random.Next(256);
            }

            var exception = Record.Exception(() => OtlpTraceDecoder.Decode(corrupted));
            Assert.True(exception is null or InvalidProtocolBufferException, $"round {round}: {exception}");
        }
    }

    [Fact]
    public void An_undefined_wire_type_throws_InvalidProtocolBufferException()
    {
        // Field 5 with wire type 7, which protobuf does not define.
        byte[] request = [(5 << 3) | 7, 0x01];

        Assert.Throws<InvalidProtocolBufferException>(() => OtlpTraceDecoder.Decode(request));
    }

    [Fact]
    public void Decodes_from_a_span_of_bytes()
    {
        var request = SampleRequest();

        var spans = OtlpTraceDecoder.Decode(new ReadOnlySpan<byte>(request));

        Assert.Equal(2, spans.Count);
    }

    private static byte[] SampleRequest() => Request(
        ResourceSpans("orders", "orders-1", "Shop.Orders",
            Span(TraceA, RootId, parentId: null, "POST /orders", kind: 2, BaseNanos, BaseNanos + 5,
                Attribute("http.status_code", IntValue(500))).Message(15, new Proto().Varint(3, 2))),
        ResourceSpans("inventory", null, "Shop.Inventory",
            Span(TraceA, ChildId, RootId, "reserve", kind: 3, BaseNanos + 1, BaseNanos + 2,
                Attribute("db.system", StringValue("postgresql")))));

    private static byte[] Request(params Proto[] resourceSpans)
    {
        var request = new Proto();
        foreach (var item in resourceSpans)
        {
            request.Message(1, item);
        }

        return request.ToArray();
    }

    private static Proto ResourceSpans(string serviceName, string? instanceId, string scopeName, params Proto[] spans) =>
        new Proto().Message(1, Resource(serviceName, instanceId)).Message(2, ScopeSpans(scopeName, spans));

    private static Proto Resource(string serviceName, string? instanceId)
    {
        var resource = new Proto().Message(1, Attribute("service.name", StringValue(serviceName)));
        if (instanceId is not null)
        {
            resource.Message(1, Attribute("service.instance.id", StringValue(instanceId)));
        }

        return resource;
    }

    private static Proto ScopeSpans(string scopeName, params Proto[] spans)
    {
        var scopeSpans = new Proto().Message(1, new Proto().String(1, scopeName));
        foreach (var span in spans)
        {
            scopeSpans.Message(2, span);
        }

        return scopeSpans;
    }

    private static Proto Span(
        byte[] traceId, byte[] spanId, byte[]? parentId, string name, int kind, ulong startNanos, ulong endNanos,
        params Proto[] attributes)
    {
        var span = new Proto().Bytes(1, traceId).Bytes(2, spanId);
        if (parentId is not null)
        {
            span.Bytes(4, parentId);
        }

        span.String(5, name).Varint(6, (ulong)kind).Fixed64(7, startNanos).Fixed64(8, endNanos);
        foreach (var attribute in attributes)
        {
            span.Message(9, attribute);
        }

        return span;
    }

    private static Proto Attribute(string key, Proto anyValue) => new Proto().String(1, key).Message(2, anyValue);

    private static Proto StringValue(string value) => new Proto().String(1, value);

    private static Proto IntValue(long value) => new Proto().Varint(3, unchecked((ulong)value));

    private static Proto BoolValue(bool value) => new Proto().Varint(2, value ? 1UL : 0UL);

    /// <summary>A protobuf message under construction; nested messages are written length-delimited.</summary>
    private sealed class Proto
    {
        private readonly List<Action<CodedOutputStream>> _fields = [];

        public Proto String(int field, string value) =>
            Add(o =>
            {
                o.WriteTag(field, WireFormat.WireType.LengthDelimited);
                o.WriteString(value);
            });

        public Proto Bytes(int field, byte[] value) =>
            Add(o =>
            {
                o.WriteTag(field, WireFormat.WireType.LengthDelimited);
                o.WriteBytes(ByteString.CopyFrom(value));
            });

        public Proto Message(int field, Proto message) => Bytes(field, message.ToArray());

        public Proto Varint(int field, ulong value) =>
            Add(o =>
            {
                o.WriteTag(field, WireFormat.WireType.Varint);
                o.WriteUInt64(value);
            });

        public Proto Fixed32(int field, uint value) =>
            Add(o =>
            {
                o.WriteTag(field, WireFormat.WireType.Fixed32);
                o.WriteFixed32(value);
            });

        public Proto Fixed64(int field, ulong value) =>
            Add(o =>
            {
                o.WriteTag(field, WireFormat.WireType.Fixed64);
                o.WriteFixed64(value);
            });

        public Proto Double(int field, double value) =>
            Add(o =>
            {
                o.WriteTag(field, WireFormat.WireType.Fixed64);
                o.WriteDouble(value);
            });

        public Proto Group(int field, Proto body) =>
            Add(o =>
            {
                o.WriteTag(field, WireFormat.WireType.StartGroup);
                body.WriteTo(o);
                o.WriteTag(field, WireFormat.WireType.EndGroup);
            });

        private void WriteTo(CodedOutputStream output)
        {
            foreach (var write in _fields)
            {
                write(output);
            }
        }

        public byte[] ToArray()
        {
            using var buffer = new MemoryStream();
            using (var output = new CodedOutputStream(buffer, leaveOpen: true))
            {
                WriteTo(output);
            }

            return buffer.ToArray();
        }

        private Proto Add(Action<CodedOutputStream> write)
        {
            _fields.Add(write);
            return this;
        }
    }
}

public sealed class TraceStoreTests
{
    private static readonly DateTimeOffset T0 = new(2024, 1, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Groups_spans_by_trace_and_orders_them_by_start()
    {
        var store = new TraceStore();
        store.Add([
            Span("t1", "b", "a", startMs: 20, endMs: 30),
            Span("t2", "x", null, startMs: 0, endMs: 5),
            Span("t1", "a", null, startMs: 10, endMs: 40),
        ]);
        store.Add([Span("t1", "c", "a", startMs: 15, endMs: 18)]);

        var trace = store.GetTrace("t1");

        Assert.NotNull(trace);
        Assert.Equal(["a", "c", "b"], trace.Select(s => s.SpanId));
        Assert.Single(store.GetTrace("t2")!);
        Assert.Null(store.GetTrace("missing"));
        Assert.Equal(2, store.Count);
    }

    [Fact]
    public void A_resent_span_replaces_the_earlier_copy()
    {
        var store = new TraceStore();
        store.Add([Span("t1", "a", null, startMs: 0, endMs: 10)]);
        store.Add([Span("t1", "a", null, startMs: 0, endMs: 10, status: SpanStatusCode.Error)]);

        var span = Assert.Single(store.GetTrace("t1")!);
        Assert.Equal(SpanStatusCode.Error, span.Status);
    }

    [Fact]
    public void Summarises_a_trace_from_its_earliest_span_without_a_parent_in_the_trace()
    {
        var store = new TraceStore();
        store.Add([
            Span("t1", "orphan", "not-received", startMs: 5, endMs: 8, name: "late orphan"),
            Span("t1", "child", "root", startMs: 2, endMs: 90, service: "inventory", status: SpanStatusCode.Error),
            Span("t1", "root", null, startMs: 3, endMs: 50, name: "POST /orders"),
        ]);

        var summary = Assert.Single(store.ListTraces(10));

        Assert.Equal("t1", summary.TraceId);
        Assert.Equal("POST /orders", summary.RootName);
        Assert.Equal(["inventory", "orders"], summary.Services);
        Assert.Equal(3, summary.SpanCount);
        Assert.Equal(T0.AddMilliseconds(2), summary.Start);
        Assert.Equal(88, summary.DurationMs, precision: 6);
        Assert.True(summary.HasError);
    }

    [Fact]
    public void Falls_back_to_the_earliest_span_when_every_span_has_a_parent_in_the_trace()
    {
        var store = new TraceStore();
        store.Add([
            Span("t1", "a", "b", startMs: 7, endMs: 9, name: "second"),
            Span("t1", "b", "a", startMs: 1, endMs: 9, name: "first"),
        ]);

        var summary = Assert.Single(store.ListTraces(10));

        Assert.Equal("first", summary.RootName);
        Assert.False(summary.HasError);
    }

    [Fact]
    public void Evicts_the_first_seen_trace_when_full()
    {
        var store = new TraceStore(maxTraces: 2);
        store.Add([Span("old", "1", null, startMs: 100, endMs: 110)]);
        store.Add([Span("mid", "2", null, startMs: 0, endMs: 10)]);
        store.Add([Span("old", "3", "1", startMs: 101, endMs: 105)]);

        store.Add([Span("new", "4", null, startMs: 50, endMs: 60)]);

        Assert.Null(store.GetTrace("old"));
        Assert.NotNull(store.GetTrace("mid"));
        Assert.NotNull(store.GetTrace("new"));
        Assert.Equal(2, store.Count);
    }

    [Fact]
    public void A_trace_keeps_at_most_its_share_of_spans_and_the_store_at_most_its_total_evicting_the_first_seen()
    {
        var store = new TraceStore(maxTraces: 10, maxSpans: 5, maxSpansPerTrace: 3);

        // One trace id sent over and over (a long-lived root, or any local client): before, it grew without bound.
        store.Add(Enumerable.Range(0, 10).Select(i => Span("endless", $"e{i}", null, startMs: i, endMs: i + 1)));
        store.Add([Span("endless", "e0", null, startMs: 0, endMs: 2)]);
        Assert.Equal(3, store.GetTrace("endless")!.Count);
        Assert.Equal(7, store.DroppedSpans);

        // Five spans in all: a new trace's third span takes the store past it, and the first-seen trace goes.
        store.Add([Span("second", "s0", null, startMs: 20, endMs: 21), Span("second", "s1", "s0", startMs: 20, endMs: 21)]);
        Assert.NotNull(store.GetTrace("endless"));
        store.Add([Span("second", "s2", "s0", startMs: 20, endMs: 21)]);
        Assert.Null(store.GetTrace("endless"));
        Assert.Equal(3, store.GetTrace("second")!.Count);
        Assert.Equal(1, store.Count);
    }

    [Fact]
    public void Lists_newest_traces_first_up_to_the_limit()
    {
        var store = new TraceStore();
        store.Add([Span("t-middle", "1", null, startMs: 20, endMs: 25)]);
        store.Add([Span("t-newest", "2", null, startMs: 30, endMs: 35)]);
        store.Add([Span("t-oldest", "3", null, startMs: 10, endMs: 15)]);

        Assert.Equal(["t-newest", "t-middle", "t-oldest"], store.ListTraces(10).Select(t => t.TraceId));
        Assert.Equal(["t-newest", "t-middle"], store.ListTraces(2).Select(t => t.TraceId));
        Assert.Empty(store.ListTraces(0));
    }

    [Fact]
    public void Filters_listed_traces_by_any_participating_service()
    {
        var store = new TraceStore();
        store.Add([
            Span("t1", "a", null, startMs: 0, endMs: 10, service: "gateway"),
            Span("t1", "b", "a", startMs: 1, endMs: 9, service: "orders"),
            Span("t2", "c", null, startMs: 20, endMs: 30, service: "gateway"),
            Span("t3", "d", null, startMs: 40, endMs: 50, service: "inventory"),
        ]);

        Assert.Equal(["t1"], store.ListTraces(10, "orders").Select(t => t.TraceId));
        Assert.Equal(["t2", "t1"], store.ListTraces(10, "gateway").Select(t => t.TraceId));
        Assert.Empty(store.ListTraces(10, "notifications"));
    }

    [Fact]
    public void Rejects_a_non_positive_capacity()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TraceStore(0));
    }

    private static SpanRecord Span(
        string traceId, string spanId, string? parentId, int startMs, int endMs,
        string service = "orders", string? name = null, SpanStatusCode status = SpanStatusCode.Unset) =>
        new(traceId, spanId, parentId, name ?? spanId, SpanKindCode.Internal, T0.AddMilliseconds(startMs), T0.AddMilliseconds(endMs),
            status, service, ServiceInstanceId: null, "test", new Dictionary<string, string>());
}
