using System.Text.Json;
using System.Text.Json.Nodes;
using Shop.ServiceDefaults.Messaging;
using Shop.ServiceDefaults.Messaging.Schemas;

namespace Shop.Tests.Unit;

public sealed class MessagingSchemaTests
{
    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement.Clone();

    private static IReadOnlyList<string> Check(string schema, string instance) => JsonSchema.Parse(schema).Validate(Json(instance));

    [Theory]
    [InlineData("""{"type":"object"}""", """{}""", true)]
    [InlineData("""{"type":"object"}""", """[]""", false)]
    [InlineData("""{"type":"array"}""", """[1]""", true)]
    [InlineData("""{"type":"string"}""", "\"a\"", true)]
    [InlineData("""{"type":"string"}""", "1", false)]
    [InlineData("""{"type":"integer"}""", "3", true)]
    [InlineData("""{"type":"integer"}""", "3.0", true)]
    [InlineData("""{"type":"integer"}""", "3.5", false)]
    [InlineData("""{"type":"number"}""", "3.5", true)]
    [InlineData("""{"type":"number"}""", "\"3.5\"", false)]
    [InlineData("""{"type":"boolean"}""", "false", true)]
    [InlineData("""{"type":"boolean"}""", "0", false)]
    [InlineData("""{"type":"null"}""", "null", true)]
    [InlineData("""{"type":["string","null"]}""", "null", true)]
    [InlineData("""{"type":["string","null"]}""", "\"x\"", true)]
    [InlineData("""{"type":["string","null"]}""", "1", false)]
    public void Type_accepts_only_the_named_json_types(string schema, string instance, bool valid)
    {
        Assert.Equal(valid, Check(schema, instance).Count == 0);
    }

    [Fact]
    public void Required_properties_must_be_present_and_each_missing_one_is_reported()
    {
        const string schema = """{"type":"object","required":["a","b"],"properties":{"a":{"type":"string"}}}""";

        var errors = Check(schema, """{"c":1}""");

        Assert.Equal(["$: required property 'a' is missing", "$: required property 'b' is missing"], errors);
        Assert.Empty(Check(schema, """{"a":"x","b":null}"""));
    }

    [Fact]
    public void Unknown_properties_are_tolerated_unless_additional_properties_says_otherwise()
    {
        Assert.Empty(Check("""{"type":"object","properties":{"a":{"type":"integer"}}}""", """{"a":1,"later":"field"}"""));
        Assert.Equal(["$.later: is not allowed"],
            Check("""{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":false}""", """{"a":1,"later":"field"}"""));
        Assert.Equal(["$.later: must be of type integer but is string"],
            Check("""{"type":"object","additionalProperties":{"type":"integer"}}""", """{"later":"field"}"""));
    }

    [Fact]
    public void Nested_errors_name_the_path_of_the_offending_value()
    {
        const string schema = """
            {"type":"object","properties":{"items":{"type":"array","minItems":1,
              "items":{"type":"object","required":["quantity"],"properties":{"quantity":{"type":"integer","minimum":1}}}}}}
            """;

        Assert.Equal(["$.items[1].quantity: must be at least 1"], Check(schema, """{"items":[{"quantity":2},{"quantity":0}]}"""));
        Assert.Equal(["$.items: must have at least 1 items but has 0"], Check(schema, """{"items":[]}"""));
        Assert.Equal(["$.items[0]: required property 'quantity' is missing"], Check(schema, """{"items":[{}]}"""));
    }

    [Theory]
    [InlineData("""{"enum":["released","expired"]}""", "\"expired\"", true)]
    [InlineData("""{"enum":["released","expired"]}""", "\"other\"", false)]
    [InlineData("""{"type":"number","minimum":0}""", "0", true)]
    [InlineData("""{"type":"number","minimum":0}""", "-0.01", false)]
    [InlineData("""{"type":"number","maximum":10}""", "10.5", false)]
    [InlineData("""{"type":"string","minLength":3,"maxLength":3}""", "\"EUR\"", true)]
    [InlineData("""{"type":"string","minLength":3,"maxLength":3}""", "\"EURO\"", false)]
    [InlineData("""{"type":"string","minLength":3}""", "\"€€\"", false)]
    [InlineData("""{"type":"string","maxLength":2}""", "\"😀😀\"", true)]
    [InlineData("""{"type":"string","pattern":"^[A-Z]{3}$"}""", "\"usd\"", false)]
    [InlineData("""{"type":"array","maxItems":1}""", "[1,2]", false)]
    public void Value_keywords_bound_what_is_accepted(string schema, string instance, bool valid)
    {
        Assert.Equal(valid, Check(schema, instance).Count == 0);
    }

    [Theory]
    [InlineData("uuid", "0f8fad5b-d9cb-469f-a165-70867728950e", true)]
    [InlineData("uuid", "0f8fad5bd9cb469fa16570867728950e", false)]
    [InlineData("uuid", "not-a-uuid", false)]
    [InlineData("date-time", "2025-03-01T12:30:00Z", true)]
    [InlineData("date-time", "2025-03-01T12:30:00.1234567+01:00", true)]
    [InlineData("date-time", "2025-03-01 12:30:00Z", false)]
    [InlineData("date-time", "2025-03-01T12:30:00", false)]
    [InlineData("date-time", "2025-02-30T12:30:00Z", false)]
    public void Formats_check_uuids_and_rfc3339_date_times(string format, string value, bool valid)
    {
        Assert.Equal(valid, Check($$"""{"type":"string","format":"{{format}}"}""", $"\"{value}\"").Count == 0);
    }

    [Fact]
    public void A_format_does_not_apply_to_null_when_null_is_allowed()
    {
        Assert.Empty(Check("""{"type":["string","null"],"format":"uuid"}""", "null"));
    }

    [Theory]
    [InlineData("""{"type":"object","oneOf":[]}""")]
    [InlineData("""{"$ref":"#/x"}""")]
    [InlineData("""{"type":"decimal"}""")]
    [InlineData("""{"format":"email"}""")]
    [InlineData("""{"properties":{"a":{"minLength":-1}}}""")]
    [InlineData("""[]""")]
    [InlineData("""{""")]
    public void A_schema_with_keywords_the_validator_does_not_support_is_refused(string schema)
    {
        Assert.Throws<FormatException>(() => JsonSchema.Parse(schema));
    }

    [Fact]
    public void Every_event_type_of_the_design_has_a_version_1_schema()
    {
        string[] expected =
        [
            "order.created", "order.stock_reserved", "order.paid", "order.cancelled", "order.failed", "order.shipped",
            "inventory.reserved", "inventory.confirmed", "inventory.released", "inventory.stock_depleted", "inventory.stock_replenished",
        ];

        Assert.Equal(expected.Order(), EventSchemas.Registered.Select(r => r.EventType).Order());
        Assert.All(EventSchemas.Registered, r => Assert.Equal(1, r.Version));
        Assert.Equal(expected.Order(), Samples.Keys.Order());
    }

    [Theory]
    [MemberData(nameof(SampleNames))]
    public void The_sample_of_each_event_matches_its_schema(string eventType)
    {
        Assert.Empty(EventSchemas.Validate(Envelope(eventType, Json(Samples[eventType]))));
    }

    [Theory]
    [MemberData(nameof(SampleNames))]
    public void The_sample_of_each_event_without_any_one_required_property_fails_its_schema(string eventType)
    {
        var required = EventSchemas.Find(eventType, 1)!.RequiredProperties;
        Assert.NotEmpty(required);
        foreach (var property in required)
        {
            var data = JsonNode.Parse(Samples[eventType])!.AsObject();
            data.Remove(property);

            var errors = EventSchemas.Validate(Envelope(eventType, JsonSerializer.SerializeToElement(data)));

            Assert.Equal([$"$.data: required property '{property}' is missing"], errors);
        }
    }

    [Fact]
    public void A_nullable_reservation_id_must_still_be_present()
    {
        var data = Json("""{"orderId":"0f8fad5b-d9cb-469f-a165-70867728950e","reason":"payment declined","reservationId":null}""");
        Assert.Empty(EventSchemas.Validate(Envelope("order.failed", data)));
    }

    [Fact]
    public void A_release_reason_outside_the_list_fails()
    {
        var data = JsonNode.Parse(Samples["inventory.released"])!.AsObject();
        data["reason"] = "lost";

        var errors = EventSchemas.Validate(Envelope("inventory.released", JsonSerializer.SerializeToElement(data)));

        Assert.Single(errors, e => e.StartsWith("$.data.reason: must be one of", StringComparison.Ordinal));
    }

    [Fact]
    public void The_envelope_fields_are_validated_before_the_data()
    {
        var envelope = new EventEnvelope(Guid.Empty, "", 0, DateTimeOffset.UnixEpoch, "", "", 0, null, null, null, default);

        Assert.Equal(
            ["$.eventId: must be a non-empty uuid", "$.eventType: is required", "$.eventVersion: must be at least 1", "$.tenantId: is required", "$.aggregateId: is required"],
            EventSchemas.Validate(envelope));
    }

    [Fact]
    public void An_event_type_or_version_without_a_schema_is_refused()
    {
        Assert.Equal(["$.eventType: no schema is registered for order.created v2"],
            EventSchemas.Validate(Envelope("order.created", Json(Samples["order.created"])) with { EventVersion = 2 }));
        Assert.Throws<EventValidationException>(() => EventSchemas.EnsureValid(Envelope("order.teleported", Json("{}"))));
    }

    [Theory]
    [InlineData("order.created.v1.json", "order.created", 1)]
    [InlineData("inventory.stock_depleted.v12.json", "inventory.stock_depleted", 12)]
    public void Schema_file_names_give_the_event_type_and_version(string fileName, string eventType, int version)
    {
        Assert.Equal((eventType, version), EventSchemas.ParseName(fileName));
        Assert.Throws<InvalidOperationException>(() => EventSchemas.ParseName("order.created.json"));
        Assert.Throws<InvalidOperationException>(() => EventSchemas.ParseName("order.created.v0.json"));
    }

    public static TheoryData<string> SampleNames => [.. Samples.Keys];

    private static EventEnvelope Envelope(string eventType, JsonElement data) =>
        new(Guid.NewGuid(), eventType, 1, DateTimeOffset.UnixEpoch, "demo", Guid.NewGuid().ToString(), 1, null, null, null, data);

    private const string Id1 = "0f8fad5b-d9cb-469f-a165-70867728950e";
    private const string Id2 = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    private const string Items = $$"""[{"productId":"{{Id1}}","quantity":2}]""";
    private const string Level = $$"""{"productId":"{{Id1}}","quantity":10,"reserved":10,"available":0}""";

    /// <summary>One valid data payload per event type, as its producer serializes it.</summary>
    private static readonly Dictionary<string, string> Samples = new()
    {
        ["order.created"] = $$"""{"orderId":"{{Id1}}","customerId":"user-1","total":19.98,"currency":"EUR","items":[{"productId":"{{Id2}}","quantity":2,"unitPrice":9.99}]}""",
        ["order.stock_reserved"] = $$"""{"orderId":"{{Id1}}","reservationId":"{{Id2}}"}""",
        ["order.paid"] = $$"""{"orderId":"{{Id1}}","paymentId":"pay_123","amount":19.98,"currency":"EUR"}""",
        ["order.cancelled"] = $$"""{"orderId":"{{Id1}}","reason":"customer request","reservationId":"{{Id2}}","refunded":true}""",
        ["order.failed"] = $$"""{"orderId":"{{Id1}}","reason":"out of stock","reservationId":null}""",
        ["order.shipped"] = $$"""{"orderId":"{{Id1}}"}""",
        ["inventory.reserved"] = $$"""{"reservationId":"{{Id2}}","orderId":"{{Id1}}","items":{{Items}},"expiresAt":"2025-03-01T12:45:00+00:00"}""",
        ["inventory.confirmed"] = $$"""{"reservationId":"{{Id2}}","orderId":"{{Id1}}","items":{{Items}}}""",
        ["inventory.released"] = $$"""{"reservationId":"{{Id2}}","orderId":"{{Id1}}","items":{{Items}},"reason":"expired"}""",
        ["inventory.stock_depleted"] = Level,
        ["inventory.stock_replenished"] = Level,
    };
}
