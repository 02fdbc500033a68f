using System.Text.Json;
using System.Text.Json.Serialization;

namespace Shop.ServiceDefaults.Errors;

/// <summary>
/// JSON strings of a request may not hold U+0000: PostgreSQL's text cannot, and a value that reaches it only to be refused
/// there costs a round trip and an error on a pooled connection, and can break that connection: PostgreSQL refuses it
/// while binding the statement, which Npgsql 10.0.0-10.0.3 mishandles when it is a prepared statement's first run in a
/// transaction (npgsql/npgsql#6391). The request is refused while it is read instead, with the field named (see
/// <see cref="BadRequestProblem"/>).
/// </summary>
internal sealed class TextWithoutNul : JsonConverter<string>
{
    public override bool HandleNull => false;

    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = reader.GetString();
        return text is not null && text.Contains('\0', StringComparison.Ordinal) ? throw new UnstorableTextException() : text;
    }

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);
}

/// <summary>A request's text holds the NUL character, which nothing here can store.</summary>
internal sealed class UnstorableTextException : JsonException
{
    public const string Title = "The request contains text that cannot be stored.";

    public const string Detail = "Text may not contain the NUL character (U+0000).";

    public UnstorableTextException()
        : base(Detail)
    {
    }
}
