using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;

namespace Shop.Hosting.Dashboard.Otlp;

public enum SpanKindCode
{
    Unspecified = 0,
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

public enum SpanStatusCode
{
    Unset = 0,
    Ok = 1,
    Error = 2,
}

public sealed record SpanRecord(
    string TraceId,
    string SpanId,
    string? ParentSpanId,
    string Name,
    SpanKindCode Kind,
    DateTimeOffset Start,
    DateTimeOffset End,
    SpanStatusCode Status,
    string ServiceName,
    string? ServiceInstanceId,
    string ScopeName,
    IReadOnlyDictionary<string, string> Attributes)
{
    public TimeSpan Duration => End - Start;
}

/// <summary>
/// Decodes an OTLP/HTTP protobuf <c>ExportTraceServiceRequest</c> without generated classes.
/// Malformed input throws <see cref="InvalidProtocolBufferException"/>.
/// </summary>
public static class OtlpTraceDecoder
{
    public const string UnknownServiceName = "unknown";

    private const uint Varint = 0;
    private const uint Fixed64 = 1;
    private const uint LengthDelimited = 2;
    private const uint HighestWireType = 5;

    // Field tags are switched on whole (field number and wire type), as generated code does, so a known
    // field number arriving with an unexpected wire type is skipped like any unknown field.
    private const uint RequestResourceSpans = (1 << 3) | LengthDelimited;

    private const uint ResourceSpansResource = (1 << 3) | LengthDelimited;
    private const uint ResourceSpansScopeSpans = (2 << 3) | LengthDelimited;

    private const uint ResourceAttributes = (1 << 3) | LengthDelimited;

    private const uint ScopeSpansScope = (1 << 3) | LengthDelimited;
    private const uint ScopeSpansSpans = (2 << 3) | LengthDelimited;

    private const uint ScopeName = (1 << 3) | LengthDelimited;

    private const uint SpanTraceId = (1 << 3) | LengthDelimited;
    private const uint SpanSpanId = (2 << 3) | LengthDelimited;
    private const uint SpanParentSpanId = (4 << 3) | LengthDelimited;
    private const uint SpanName = (5 << 3) | LengthDelimited;
    private const uint SpanKind = (6 << 3) | Varint;
    private const uint SpanStartTime = (7 << 3) | Fixed64;
    private const uint SpanEndTime = (8 << 3) | Fixed64;
    private const uint SpanAttributes = (9 << 3) | LengthDelimited;
    private const uint SpanStatus = (15 << 3) | LengthDelimited;

    private const uint StatusCode = (3 << 3) | Varint;

    private const uint KeyValueKey = (1 << 3) | LengthDelimited;
    private const uint KeyValueValue = (2 << 3) | LengthDelimited;

    private const uint AnyString = (1 << 3) | LengthDelimited;
    private const uint AnyBool = (2 << 3) | Varint;
    private const uint AnyInt = (3 << 3) | Varint;
    private const uint AnyDouble = (4 << 3) | Fixed64;
    private const uint AnyArray = (5 << 3) | LengthDelimited;
    private const uint AnyKeyValueList = (6 << 3) | LengthDelimited;
    private const uint AnyBytes = (7 << 3) | LengthDelimited;

    private const uint ListValues = (1 << 3) | LengthDelimited;

    // Arrays and kvlists can nest without bound; deeper levels are elided rather than recursed into.
    private const int MaxValueDepth = 8;

    public static IReadOnlyList<SpanRecord> Decode(ReadOnlySpan<byte> exportTraceServiceRequest) =>
        Decode(exportTraceServiceRequest.ToArray());

    public static IReadOnlyList<SpanRecord> Decode(byte[] exportTraceServiceRequest)
    {
        ArgumentNullException.ThrowIfNull(exportTraceServiceRequest);

        var spans = new List<SpanRecord>();
        using var input = new CodedInputStream(exportTraceServiceRequest);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (tag == RequestResourceSpans)
            {
                ReadResourceSpans(input.ReadBytes(), spans);
            }
            else
            {
                Skip(input, tag);
            }
        }

        return spans;
    }

    private static void ReadResourceSpans(ByteString message, List<SpanRecord> output)
    {
        var resourceAttributes = new Dictionary<string, string>(StringComparer.Ordinal);
        var scoped = new List<(string Scope, SpanFields Span)>();

        using var input = message.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (tag)
            {
                case ResourceSpansResource:
                    ReadResource(input.ReadBytes(), resourceAttributes);
                    break;
                case ResourceSpansScopeSpans:
                    ReadScopeSpans(input.ReadBytes(), scoped);
                    break;
                default:
                    Skip(input, tag);
                    break;
            }
        }

        // The resource may follow its spans on the wire, so records are only built once it is known.
        var serviceName = resourceAttributes.GetValueOrDefault("service.name");
        if (string.IsNullOrEmpty(serviceName))
        {
            serviceName = UnknownServiceName;
        }

        var instanceId = resourceAttributes.GetValueOrDefault("service.instance.id");
        foreach (var (scope, span) in scoped)
        {
            output.Add(span.ToRecord(serviceName, instanceId, scope));
        }
    }

    private static void ReadResource(ByteString message, Dictionary<string, string> attributes)
    {
        using var input = message.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (tag == ResourceAttributes)
            {
                AddAttribute(input.ReadBytes(), attributes);
            }
            else
            {
                Skip(input, tag);
            }
        }
    }

    private static void ReadScopeSpans(ByteString message, List<(string Scope, SpanFields Span)> output)
    {
        var scopeName = string.Empty;
        var spans = new List<SpanFields>();

        using var input = message.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (tag)
            {
                case ScopeSpansScope:
                    scopeName = ReadScopeName(input.ReadBytes());
                    break;
                case ScopeSpansSpans:
                    spans.Add(ReadSpan(input.ReadBytes()));
                    break;
                default:
                    Skip(input, tag);
                    break;
            }
        }

        foreach (var span in spans)
        {
            output.Add((scopeName, span));
        }
    }

    private static string ReadScopeName(ByteString message)
    {
        var name = string.Empty;
        using var input = message.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (tag == ScopeName)
            {
                name = input.ReadString();
            }
            else
            {
                Skip(input, tag);
            }
        }

        return name;
    }

    private static SpanFields ReadSpan(ByteString message)
    {
        var span = new SpanFields();
        using var input = message.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (tag)
            {
                case SpanTraceId:
                    span.TraceId = ToHex(input.ReadBytes());
                    break;
                case SpanSpanId:
                    span.SpanId = ToHex(input.ReadBytes());
                    break;
                case SpanParentSpanId:
                    var parent = input.ReadBytes();
                    span.ParentSpanId = parent.IsEmpty ? null : ToHex(parent);
                    break;
                case SpanName:
                    span.Name = input.ReadString();
                    break;
                case SpanKind:
                    span.Kind = ToKind(input.ReadEnum());
                    break;
                case SpanStartTime:
                    span.Start = FromUnixNanos(input.ReadFixed64());
                    break;
                case SpanEndTime:
                    span.End = FromUnixNanos(input.ReadFixed64());
                    break;
                case SpanAttributes:
                    AddAttribute(input.ReadBytes(), span.Attributes);
                    break;
                case SpanStatus:
                    span.Status = ReadStatusCode(input.ReadBytes());
                    break;
                default:
                    Skip(input, tag);
                    break;
            }
        }

        return span;
    }

    private static SpanStatusCode ReadStatusCode(ByteString message)
    {
        var code = SpanStatusCode.Unset;
        using var input = message.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (tag == StatusCode)
            {
                code = input.ReadEnum() switch
                {
                    1 => SpanStatusCode.Ok,
                    2 => SpanStatusCode.Error,
                    _ => SpanStatusCode.Unset,
                };
            }
            else
            {
                Skip(input, tag);
            }
        }

        return code;
    }

    private static void AddAttribute(ByteString keyValue, Dictionary<string, string> attributes)
    {
        var (key, value) = ReadKeyValue(keyValue, depth: 0);
        attributes[key] = value;
    }

    private static (string Key, string Value) ReadKeyValue(ByteString message, int depth)
    {
        var key = string.Empty;
        var value = string.Empty;
        using var input = message.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (tag)
            {
                case KeyValueKey:
                    key = input.ReadString();
                    break;
                case KeyValueValue:
                    value = ReadAnyValue(input.ReadBytes(), depth);
                    break;
                default:
                    Skip(input, tag);
                    break;
            }
        }

        return (key, value);
    }

    private static string ReadAnyValue(ByteString message, int depth)
    {
        var value = string.Empty;
        using var input = message.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (tag)
            {
                case AnyString:
                    value = input.ReadString();
                    break;
                case AnyBool:
                    value = input.ReadBool() ? "true" : "false";
                    break;
                case AnyInt:
                    value = input.ReadInt64().ToString(CultureInfo.InvariantCulture);
                    break;
                case AnyDouble:
                    value = input.ReadDouble().ToString(CultureInfo.InvariantCulture);
                    break;
                case AnyArray:
                    value = RenderList(input.ReadBytes(), depth, isKeyValueList: false);
                    break;
                case AnyKeyValueList:
                    value = RenderList(input.ReadBytes(), depth, isKeyValueList: true);
                    break;
                case AnyBytes:
                    value = input.ReadBytes().ToBase64();
                    break;
                default:
                    Skip(input, tag);
                    break;
            }
        }

        return value;
    }

    // ArrayValue and KeyValueList share one shape: repeated field 1 holding AnyValue or KeyValue items.
    private static string RenderList(ByteString message, int depth, bool isKeyValueList)
    {
        var (open, close) = isKeyValueList ? ("{", "}") : ("[", "]");
        if (depth >= MaxValueDepth)
        {
            return open + "..." + close;
        }

        var items = new List<string>();
        using var input = message.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (tag != ListValues)
            {
                Skip(input, tag);
            }
            else if (isKeyValueList)
            {
                var (key, value) = ReadKeyValue(input.ReadBytes(), depth + 1);
                items.Add(key + ": " + value);
            }
            else
            {
                items.Add(ReadAnyValue(input.ReadBytes(), depth + 1));
            }
        }

        return open + string.Join(", ", items) + close;
    }

    private static void Skip(CodedInputStream input, uint tag)
    {
        // SkipLastField silently ignores the undefined wire types 6 and 7, which would leave the
        // rest of the payload misread; treat them as corruption instead.
        if ((tag & 7) > HighestWireType)
        {
            throw InvalidWireType();
        }

        input.SkipLastField();
    }

    // InvalidProtocolBufferException has no public constructor, so the library is made to raise one.
    private static InvalidProtocolBufferException InvalidWireType()
    {
        try
        {
            using var probe = new CodedInputStream([0]);
            probe.ReadTag();
        }
        catch (InvalidProtocolBufferException exception)
        {
            return exception;
        }

        throw new UnreachableException("A zero tag is always rejected by CodedInputStream.");
    }

    private static string ToHex(ByteString bytes) => Convert.ToHexStringLower(bytes.Span);

    private static SpanKindCode ToKind(int value) =>
        value is >= (int)SpanKindCode.Unspecified and <= (int)SpanKindCode.Consumer
            ? (SpanKindCode)value
            : SpanKindCode.Unspecified;

    // ulong.MaxValue nanoseconds is still within DateTimeOffset's range, so this cannot overflow.
    private static DateTimeOffset FromUnixNanos(ulong nanos) =>
        DateTimeOffset.UnixEpoch.AddTicks((long)(nanos / (ulong)TimeSpan.NanosecondsPerTick));

    private sealed class SpanFields
    {
        public string TraceId { get; set; } = string.Empty;
        public string SpanId { get; set; } = string.Empty;
        public string? ParentSpanId { get; set; }
        public string Name { get; set; } = string.Empty;
        public SpanKindCode Kind { get; set; }
        public DateTimeOffset Start { get; set; } = DateTimeOffset.UnixEpoch;
        public DateTimeOffset End { get; set; } = DateTimeOffset.UnixEpoch;
        public SpanStatusCode Status { get; set; }
        public Dictionary<string, string> Attributes { get; } = new(StringComparer.Ordinal);

        public SpanRecord ToRecord(string serviceName, string? instanceId, string scopeName) =>
            new(TraceId, SpanId, ParentSpanId, Name, Kind, Start, End, Status, serviceName, instanceId, scopeName, Attributes);
    }
}
