using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Primitives;
using Shop.Inventory.Products;
using Shop.ServiceDefaults.Errors;

namespace Shop.Tests.Unit;

/// <summary>How requests the services cannot take are read and answered: conditions, encodings, binding failures.</summary>
public sealed class RequestProblemTests
{
    [Theory]
    [InlineData("\"3\"", true, false, true)]
    [InlineData("\"7\", \"3\"", true, false, true)]
    [InlineData("*", true, false, true)]
    [InlineData("W/\"3\"", true, false, false)]
    [InlineData("\"4\"", true, false, false)]
    [InlineData("3", true, true, false)]
    [InlineData("\"3", true, true, false)]
    [InlineData("\"3\" \"4\"", true, true, false)]
    [InlineData("", false, false, false)]
    public void If_match_matches_the_current_tag_strongly_and_names_a_malformed_header(string header, bool present, bool malformed, bool matches)
    {
        var condition = IfMatch.Parse(new StringValues(header));

        Assert.Equal((present, malformed, matches), (condition.IsPresent, condition.IsMalformed, condition.Matches("\"3\"")));
    }

    [Fact]
    public void An_absent_if_match_is_not_present()
    {
        Assert.False(IfMatch.Parse(StringValues.Empty).IsPresent);
    }

    [Theory]
    [InlineData("application/json", null)]
    [InlineData("application/json; charset=utf-8", null)]
    [InlineData("application/json; charset=\"UTF-8\"", null)]
    [InlineData("application/json; charset=latin1", "application/json")]
    [InlineData("application/merge-patch+json; charset=utf-16", "application/merge-patch+json")]
    [InlineData("text/plain; charset=latin1", null)]
    [InlineData("not a media type", null)]
    public void Json_is_read_as_utf8_whatever_charset_it_declares(string contentType, string? readAs)
    {
        Assert.Equal(readAs, RequestBodyGuard.WithoutJsonCharset(contentType));
    }

    [Theory]
    [InlineData("$.items[1].quantity", "items[1].quantity")]
    [InlineData("$.price.amount", "price.amount")]
    [InlineData("$", null)]
    [InlineData("$[0]", null)]
    [InlineData(null, null)]
    public void A_json_path_names_the_field_of_the_body(string? path, string? field)
    {
        Assert.Equal(field, BadRequestProblem.FieldOf(path));
    }

    private sealed record Thing(int Count, string? Name);

    private sealed record Line(Guid ProductId, int Quantity);

    private sealed record Basket(IReadOnlyList<Line>? Items, decimal? Total, Guid[]? Coupons, string? Note)
    {
        /// <summary>Not read from the body: a value sent for it is ignored by the serializer, and so never named.</summary>
        [System.Text.Json.Serialization.JsonIgnore]
        public string? Hidden { get; set; }

        public int Lines => Items?.Count ?? 0;
    }

    /// <summary>
    /// The services' defaults, outside Development (where the framework would otherwise answer an empty 400 and say why
    /// only in a debug log), served by Kestrel on loopback and called over HTTP.
    /// </summary>
    [Fact]
    public async Task Outside_development_a_value_that_cannot_be_bound_is_a_problem_naming_its_field_in_the_span_too_and_json_is_read_as_utf8()
    {
        var spans = new System.Collections.Concurrent.ConcurrentQueue<System.Diagnostics.Activity>();
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = source => source.Name == "Microsoft.AspNetCore",
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllData,
            ActivityStopped = spans.Enqueue,
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = Environments.Production, Args = [] });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.AddServiceDefaults();
        await using var app = builder.Build();
        app.MapDefaultEndpoints();
        app.MapGet("/pages", (int page) => page);
        app.MapGet("/lists", (int? page, bool? active, Guid? after, string? q, int pageSize = 20) => pageSize);
        app.MapGet("/shelves/{count}", (int count, [Microsoft.AspNetCore.Mvc.FromQuery(Name = "side")] int? at) => count);
        app.MapPost("/things", (Thing thing) => thing);
        app.MapPost("/baskets", (Basket basket) => basket);
        await app.StartAsync(TestContext.Current.CancellationToken);
        try
        {
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
            using var client = new HttpClient { BaseAddress = new Uri(address) };
            async Task<(HttpStatusCode Status, string? Type, string Fields)> SendAsync(HttpRequestMessage request)
            {
                using var response = await client.SendAsync(request, TestContext.Current.CancellationToken);
                var type = response.Content.Headers.ContentType?.MediaType;
                var body = type == "application/problem+json"
                    ? await response.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken)
                    : default;
                var fields = body.ValueKind == JsonValueKind.Object && body.TryGetProperty("errors", out var errors)
                    ? string.Join(",", errors.EnumerateObject().Select(e => e.Name))
                    : "";
                return (response.StatusCode, type, fields);
            }

            HttpRequestMessage Post(string json, string contentType = "application/json", string path = "/things")
            {
                var content = new StringContent(json, Encoding.UTF8);
                content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse(contentType);
                return new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
            }

            Assert.Equal((HttpStatusCode.OK, "application/json", ""), await SendAsync(new HttpRequestMessage(HttpMethod.Get, "/pages?page=2")));
            Assert.Equal((HttpStatusCode.BadRequest, "application/problem+json", "page"), await SendAsync(new HttpRequestMessage(HttpMethod.Get, "/pages?page=two")));
            Assert.Equal((HttpStatusCode.BadRequest, "application/problem+json", "page"), await SendAsync(new HttpRequestMessage(HttpMethod.Get, "/pages")));
            // Every value that does not parse is named, in the handler's order, not only the first the framework met.
            Assert.Equal((HttpStatusCode.BadRequest, "application/problem+json", "page,active,after,pageSize"),
                await SendAsync(new HttpRequestMessage(HttpMethod.Get, "/lists?pageSize=ten&after=x&q=anything&active=maybe&page=two")));
            Assert.Equal((HttpStatusCode.BadRequest, "application/problem+json", "pageSize"),
                await SendAsync(new HttpRequestMessage(HttpMethod.Get, "/lists?active=true&pageSize=1.5")));
            Assert.Equal((HttpStatusCode.BadRequest, "application/problem+json", "page,pageSize"),
                await SendAsync(new HttpRequestMessage(HttpMethod.Get, "/lists?pageSize=&page=")));
            Assert.Equal((HttpStatusCode.OK, "application/json", ""),
                await SendAsync(new HttpRequestMessage(HttpMethod.Get, "/lists?page=2&active=false&after=3f2504e0-4f89-11d3-9a0c-0305e82c3301&pageSize=5")));
            Assert.Equal((HttpStatusCode.BadRequest, "application/problem+json", "count,side"),
                await SendAsync(new HttpRequestMessage(HttpMethod.Get, "/shelves/many?side=left&at=3")));
            // A parameter named otherwise in the request is named as the request names it, once.
            Assert.Equal((HttpStatusCode.BadRequest, "application/problem+json", "side"),
                await SendAsync(new HttpRequestMessage(HttpMethod.Get, "/shelves/5?side=left&at=3")));
            Assert.Equal((HttpStatusCode.OK, "application/json", ""), await SendAsync(Post("""{"count":1,"name":"a"}""", "application/json; charset=utf-8")));
            Assert.Equal((HttpStatusCode.BadRequest, "application/problem+json", "count"), await SendAsync(Post("""{"count":"one"}""")));
            // Every value of the wrong type is named, not only the first, where the reader stopped: in a list, in a line of
            // it, a line that is not one, and text the database could not hold. A property the body type does not have is not.
            Assert.Equal((HttpStatusCode.BadRequest, "application/problem+json", "count,name"), await SendAsync(Post("""{"count":"one","name":5}""")));
            Assert.Equal((HttpStatusCode.BadRequest, "application/problem+json", "items[0].quantity,items[0].productId,items[2],total,coupons[1],note"),
                await SendAsync(Post("""
                    {"items":[{"quantity":"two","productId":"x"},{"productId":"3f2504e0-4f89-11d3-9a0c-0305e82c3301","quantity":1},7],
                     "total":"lots","coupons":["3f2504e0-4f89-11d3-9a0c-0305e82c3301","nope"],"note":"a\u0000b","unknown":"ignored",
                     "hidden":5,"lines":"many"}
                    """, path: "/baskets")));
            // Text the database could not hold stops the reader too, and the rest are named after it.
            Assert.Equal((HttpStatusCode.BadRequest, "application/problem+json", "note,total"),
                await SendAsync(Post("""{"note":"a\u0000b","total":"lots"}""", path: "/baskets")));
            // A body over 64 KiB is not read again: its first value of the wrong type is named alone.
            Assert.Equal((HttpStatusCode.BadRequest, "application/problem+json", "count"),
                await SendAsync(Post($$"""{"count":"one","name":5,"padding":"{{new string('x', 70_000)}}"}""")));
            Assert.Equal((HttpStatusCode.OK, "application/json", ""),
                await SendAsync(Post("""{"items":[{"productId":"3f2504e0-4f89-11d3-9a0c-0305e82c3301","quantity":1}],"total":2.5,"coupons":[],"note":"n"}""", path: "/baskets")));
            Assert.Equal((HttpStatusCode.BadRequest, "application/problem+json", ""), await SendAsync(Post("""{"count":1,""")));
            Assert.Equal((HttpStatusCode.OK, "application/json", ""), await SendAsync(Post("""{"count":1}""", "application/json; charset=nonsense")));
            Assert.Equal((HttpStatusCode.OK, "application/json", ""), await SendAsync(Post("""{"count":1}""", "application/json; charset=iso-8859-1")));
            Assert.Equal((HttpStatusCode.UnsupportedMediaType, "application/problem+json", ""), await SendAsync(Post("""{"count":1}""", "text/plain")));
            // Text with NUL never reaches a handler (nor a database): refused while the body or the query is read.
            Assert.Equal((HttpStatusCode.BadRequest, "application/problem+json", "name"), await SendAsync(Post("""{"count":1,"name":"a\u0000b"}""")));
            Assert.Equal((HttpStatusCode.BadRequest, "application/problem+json", ""), await SendAsync(new HttpRequestMessage(HttpMethod.Get, "/pages?page=1&x=a%00")));

            using var empty = await client.PostAsync("/things", new ByteArrayContent([]) { Headers = { ContentType = new("application/json") } },
                TestContext.Current.CancellationToken);
            Assert.Equal(HttpStatusCode.BadRequest, empty.StatusCode);
            Assert.Equal("A request body is required.",
                (await empty.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken)).GetProperty("title").GetString());

            // A client that accepts no JSON still gets the status of its mistake.
            using var plain = new HttpRequestMessage(HttpMethod.Get, "/pages?page=three");
            plain.Headers.Accept.ParseAdd("text/plain");
            using var plainAnswer = await client.SendAsync(plain, TestContext.Current.CancellationToken);
            Assert.Equal(HttpStatusCode.BadRequest, plainAnswer.StatusCode);

            // The request's span carries the status the client got, also when an exception carried the request out.
            var statuses = Array.Empty<int>();
            for (var attempt = 0; attempt < 40 && statuses.Length < 4; attempt++)
            {
                await Task.Delay(50, TestContext.Current.CancellationToken);
                statuses = spans.Where(a => a.DisplayName == "GET /pages").Select(a => (int)a.GetTagItem("http.response.status_code")!).Order().ToArray();
            }

            Assert.Equal([200, 400, 400, 400], statuses);
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
        }
    }
}
