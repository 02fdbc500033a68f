using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Shop.ServiceDefaults.OpenApi;

/// <summary>
/// Every service describes itself: an OpenAPI document at <c>/openapi/v1.json</c> and Swagger UI at <c>/docs</c>.
/// Both are anonymous and come before authentication and rate limiting in the pipeline.
/// </summary>
public static class OpenApiExtensions
{
    public const string DocumentName = "v1";
    public const string DocumentPath = "/openapi/" + DocumentName + ".json";
    public const string UiPath = "/docs";

    public static IHostApplicationBuilder AddDefaultOpenApi(this IHostApplicationBuilder builder)
    {
        var service = builder.Environment.ApplicationName;
        builder.Services.AddOptions<ApiDocsOptions>().BindConfiguration(ApiDocsOptions.Section);
        builder.Services.AddOpenApi(DocumentName, options =>
        {
            options.AddDocumentTransformer(new ServiceDocumentTransformer(service));
            options.AddOperationTransformer<BearerSecurityTransformer>();
            options.AddOperationTransformer<IdempotencyKeyTransformer>();
            options.AddOperationTransformer<ProblemResponsesTransformer>();
            // Strings are read through a converter of the services' own (TextWithoutNul), which the schema generator
            // cannot see into: it would describe every string as any value. They are strings, null where nullable.
            options.AddSchemaTransformer((schema, context, _) =>
            {
                if (context.JsonTypeInfo.Type == typeof(string) && schema.Type is null)
                {
                    schema.Type = context.JsonPropertyInfo is { IsGetNullable: true } or { IsSetNullable: true }
                        ? Microsoft.OpenApi.JsonSchemaType.String | Microsoft.OpenApi.JsonSchemaType.Null
                        : Microsoft.OpenApi.JsonSchemaType.String;
                }

                // The strings of a list, or a dictionary's values, which it leaves out altogether.
                if (context.JsonTypeInfo.ElementType == typeof(string))
                {
                    if (context.JsonTypeInfo.Kind == System.Text.Json.Serialization.Metadata.JsonTypeInfoKind.Enumerable)
                    {
                        schema.Items ??= new Microsoft.OpenApi.OpenApiSchema { Type = Microsoft.OpenApi.JsonSchemaType.String };
                    }
                    else if (context.JsonTypeInfo.Kind == System.Text.Json.Serialization.Metadata.JsonTypeInfoKind.Dictionary)
                    {
                        schema.AdditionalProperties ??= new Microsoft.OpenApi.OpenApiSchema { Type = Microsoft.OpenApi.JsonSchemaType.String };
                    }
                }

                return Task.CompletedTask;
            });
        });
        return builder;
    }

    public static WebApplication MapDefaultOpenApi(this WebApplication app)
    {
        var docs = app.Services.GetRequiredService<IOptions<ApiDocsOptions>>().Value;
        if (!docs.Enabled)
        {
            return app;
        }

        // Only the one document's name is routed: any other would reach the library's own plain-text 404, not a problem.
        app.MapOpenApi("/openapi/{documentName:regex(^" + DocumentName + "$)}.json").AllowAnonymous();
        var service = app.Environment.ApplicationName;
        // Only requests for the UI pass through its middleware (a path pattern and a static-file lookup on every
        // request otherwise).
        app.UseWhen(context => context.Request.Path.StartsWithSegments(UiPath), docsOnly => docsOnly.UseSwaggerUI(ui =>
        {
            ui.RoutePrefix = UiPath.TrimStart('/');
            ui.DocumentTitle = $"{service} API";
            ui.SwaggerEndpoint(DocumentPath, service);
            foreach (var link in docs.Links)
            {
                ui.SwaggerEndpoint(link.Url, link.Name);
            }
        }));
        return app;
    }
}
