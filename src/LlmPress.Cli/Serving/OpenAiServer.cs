using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using LlmPress.Evaluation;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace LlmPress.Cli.Serving;

/// <summary>
/// An OpenAI-compatible HTTP endpoint for one model, on ASP.NET Core (Kestrel) from the shared framework:
/// POST /v1/completions, POST /v1/chat/completions (both with "stream": true as Server-Sent Events),
/// GET /v1/models and GET /health. Errors are OpenAI-style {"error": {...}} bodies.
/// </summary>
/// <remarks>
/// Lives in the CLI rather than the library so that LlmPress.Core stays free of ASP.NET Core; the pieces a
/// library user would reuse (generation, chat prompt rendering) are in the library already.
/// </remarks>
internal sealed class OpenAiServer : IAsyncDisposable
{
    private static readonly byte[] s_done = "data: [DONE]\n\n"u8.ToArray();

    // Responses are JSON for programs, never embedded in HTML, so quotes and apostrophes need no \u escapes.
    private static readonly JsonSerializerOptions s_json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly WebApplication _app;
    private readonly ServedModel _model;
    private readonly Action<string> _log;

    private OpenAiServer(WebApplication app, ServedModel model, Action<string> log, Uri address)
    {
        _app = app;
        _model = model;
        _log = log;
        Address = address;
    }

    /// <summary>The bound base address, e.g. http://127.0.0.1:8080 (the real port when 0 was asked for).</summary>
    public Uri Address { get; }

    /// <summary>Starts listening on <paramref name="address"/>:<paramref name="port"/> (0 = any free port).</summary>
    /// <param name="log">Receives one line per request and per internal error (called from several threads).</param>
    public static async Task<OpenAiServer> StartAsync(ServedModel model, IPAddress address, int port, Action<string> log, CancellationToken cancellation = default)
    {
        // The empty builder reads no appsettings.json or ASPNETCORE_* variables: the command line alone decides.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(options =>
        {
            options.AddServerHeader = false;
            options.Listen(address, port);
        });
        builder.Services.AddRoutingCore();
        var app = builder.Build();

        OpenAiServer? server = null;
        long started = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        app.MapPost("/v1/completions", context => server!.HandleCompletionAsync(context, chat: false));
        app.MapPost("/v1/chat/completions", context => server!.HandleCompletionAsync(context, chat: true));
        app.MapGet("/v1/models", context => WriteJsonAsync(context, 200, new JsonObject
        {
            ["object"] = "list",
            ["data"] = new JsonArray(new JsonObject { ["id"] = model.Id, ["object"] = "model", ["created"] = started, ["owned_by"] = "llmpress" }),
        }));
        app.MapGet("/health", context => WriteJsonAsync(context, 200, new JsonObject { ["status"] = "ok", ["model"] = model.Id, ["queued"] = model.Queued, ["tokens_generated"] = model.GeneratedTokens }));
        app.MapFallback(context => WriteErrorAsync(context, context.Request.Path.Value is "/v1/completions" or "/v1/chat/completions"
            ? new ApiException(405, $"{context.Request.Path} takes POST with a JSON body, not {context.Request.Method}.", code: "method_not_allowed")
            : new ApiException(404, $"No endpoint {context.Request.Method} {context.Request.Path}; see POST /v1/completions, POST /v1/chat/completions, GET /v1/models, GET /health.", code: "not_found")));

        await app.StartAsync(cancellation).ConfigureAwait(false);
        string bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server = new OpenAiServer(app, model, log, new Uri(bound));
        return server;
    }

    /// <summary>Stops accepting requests and waits for those in flight (cancelled when <paramref name="cancellation"/> fires).</summary>
    public Task StopAsync(CancellationToken cancellation = default) => _app.StopAsync(cancellation);

    public async ValueTask DisposeAsync() => await _app.DisposeAsync().ConfigureAwait(false);

    private async Task HandleCompletionAsync(HttpContext context, bool chat)
    {
        var clock = Stopwatch.StartNew();
        var aborted = context.RequestAborted;
        try
        {
            JsonDocument body;
            try
            {
                body = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: aborted).ConfigureAwait(false);
            }
            catch (JsonException e)
            {
                throw ApiException.BadRequest($"The request body is not valid JSON: {e.Message}");
            }
            CompletionRequest request;
            using (body) request = CompletionRequest.Parse(body.RootElement, chat, _model.Id);

            int[] promptIds = chat ? _model.EncodeChat(request.Messages!) : _model.EncodePrompt(request.Prompt!);
            if (promptIds.Length == 0)
                throw ApiException.BadRequest("The prompt is empty and the model has no BOS token to start from.", "prompt");
            string promptParam = chat ? "messages" : "prompt";
            if (promptIds.Length >= _model.ContextLength)
                throw ApiException.BadRequest(
                    $"This model's maximum context length is {_model.ContextLength} tokens; the prompt alone has {promptIds.Length}, " +
                    "leaving no room for a completion.", promptParam, "context_length_exceeded");
            // OpenAI's defaults: 16 tokens for a completion, the rest of the context for a chat answer.
            int maxTokens = request.MaxTokens ?? (chat ? _model.ContextLength - promptIds.Length : 16);
            if (promptIds.Length + maxTokens > _model.ContextLength)
                throw ApiException.BadRequest(
                    $"This model's maximum context length is {_model.ContextLength} tokens; the request needs {promptIds.Length + maxTokens} " +
                    $"({promptIds.Length} in the prompt, {maxTokens} for the completion). Shorten the prompt or lower max_tokens.",
                    promptParam, "context_length_exceeded");

            var options = new GenerationOptions(maxTokens, request.Temperature, request.TopP, request.Seed, KvCacheType: _model.KvCacheType);
            var answer = new Answer(chat, _model.Id, promptIds.Length);
            if (request.Stream) await StreamAsync(context, request, promptIds, options, answer).ConfigureAwait(false);
            else await CompleteAsync(context, request, promptIds, options, answer).ConfigureAwait(false);

            double seconds = clock.Elapsed.TotalSeconds;
            _log($"{context.Request.Method} {context.Request.Path} 200: {answer.PromptTokens} prompt + {answer.CompletionTokens} completion tokens, " +
                 $"{seconds:0.00} s, finish {answer.FinishReason}{(request.Stream ? ", streamed" : "")}");
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            _log($"{context.Request.Method} {context.Request.Path}: client disconnected after {clock.Elapsed.TotalSeconds:0.00} s; generation stopped");
        }
        catch (ApiException e)
        {
            _log($"{context.Request.Method} {context.Request.Path} {e.Status}: {e.Message}");
            await WriteErrorAsync(context, e).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _log($"{context.Request.Method} {context.Request.Path} 500: {e}");
            var error = new ApiException(500, $"Internal error: {e.GetType().Name}: {e.Message}", type: "server_error");
            if (!context.Response.HasStarted)
                await WriteErrorAsync(context, error).ConfigureAwait(false);
            else if (!aborted.IsCancellationRequested)
            {
                // The 200 status of a stream is already sent: end it with an error event, as OpenAI does mid-stream.
                await WriteEventAsync(context, ErrorBody(error), aborted).ConfigureAwait(false);
                await context.Response.Body.WriteAsync(s_done, aborted).ConfigureAwait(false);
            }
        }
    }

    private async Task CompleteAsync(HttpContext context, CompletionRequest request, int[] promptIds, GenerationOptions options, Answer answer)
    {
        var text = new StringBuilder();
        await GenerateAsync(request, promptIds, options, answer, piece =>
        {
            text.Append(piece);
            return Task.CompletedTask;
        }, context.RequestAborted).ConfigureAwait(false);

        JsonObject choice = answer.Chat
            ? new JsonObject { ["index"] = 0, ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text.ToString() }, ["logprobs"] = null, ["finish_reason"] = answer.FinishReason }
            : new JsonObject { ["index"] = 0, ["text"] = text.ToString(), ["logprobs"] = null, ["finish_reason"] = answer.FinishReason };
        var response = answer.Envelope(answer.Chat ? "chat.completion" : "text_completion");
        response["choices"] = new JsonArray(choice);
        response["usage"] = answer.Usage();
        await WriteJsonAsync(context, 200, response).ConfigureAwait(false);
    }

    private async Task StreamAsync(HttpContext context, CompletionRequest request, int[] promptIds, GenerationOptions options, Answer answer)
    {
        var aborted = context.RequestAborted;
        context.Response.StatusCode = 200;
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        string objectName = answer.Chat ? "chat.completion.chunk" : "text_completion";

        JsonObject Chunk(string? text, string? finishReason)
        {
            var chunk = answer.Envelope(objectName);
            JsonObject choice = answer.Chat
                ? new JsonObject { ["index"] = 0, ["delta"] = text is null ? new JsonObject() : new JsonObject { ["content"] = text }, ["logprobs"] = null, ["finish_reason"] = finishReason }
                : new JsonObject { ["index"] = 0, ["text"] = text ?? "", ["logprobs"] = null, ["finish_reason"] = finishReason };
            chunk["choices"] = new JsonArray(choice);
            if (request.IncludeUsage) chunk["usage"] = null;
            return chunk;
        }

        if (answer.Chat)
        {
            // As OpenAI: the first chunk names the role, the content follows in later chunks.
            var first = Chunk("", null);
            first["choices"]![0]!["delta"] = new JsonObject { ["role"] = "assistant", ["content"] = "" };
            await WriteEventAsync(context, first, aborted).ConfigureAwait(false);
        }
        await GenerateAsync(request, promptIds, options, answer,
            piece => WriteEventAsync(context, Chunk(piece, null), aborted), aborted).ConfigureAwait(false);
        await WriteEventAsync(context, Chunk(null, answer.FinishReason), aborted).ConfigureAwait(false);
        if (request.IncludeUsage)
        {
            var usage = answer.Envelope(objectName);
            usage["choices"] = new JsonArray();
            usage["usage"] = answer.Usage();
            await WriteEventAsync(context, usage, aborted).ConfigureAwait(false);
        }
        await context.Response.Body.WriteAsync(s_done, aborted).ConfigureAwait(false);
        await context.Response.Body.FlushAsync(aborted).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs one generation, handing each piece of text to <paramref name="emit"/> (never a piece past a stop
    /// sequence), and records the counts and finish reason in <paramref name="answer"/>.
    /// </summary>
    private async Task GenerateAsync(CompletionRequest request, int[] promptIds, GenerationOptions options, Answer answer,
        Func<string, Task> emit, CancellationToken cancellation)
    {
        var filter = new StopSequenceFilter(request.Stop);
        int generated = 0;
        bool stopped = false;
        await foreach (var token in _model.GenerateAsync(promptIds, options, cancellation).ConfigureAwait(false))
        {
            if (token.Id >= 0 && answer.Chat && _model.IsEndOfTurn(token.Id))
            {
                stopped = true;
                break;
            }
            if (token.Id >= 0) generated++;
            string piece = filter.Push(token.Text);
            if (piece.Length > 0) await emit(piece).ConfigureAwait(false);
            if (filter.Stopped)
            {
                stopped = true;
                break;
            }
        }
        if (!stopped)
        {
            string rest = filter.Flush();
            if (rest.Length > 0) await emit(rest).ConfigureAwait(false);
        }
        answer.CompletionTokens = generated;
        // The generator yields exactly max_tokens tokens unless it sampled an end-of-sequence token first (the
        // context check above guarantees the KV cache holds prompt + max_tokens).
        answer.FinishReason = stopped || generated < options.MaxTokens ? "stop" : "length";
    }

    private static async Task WriteEventAsync(HttpContext context, JsonObject data, CancellationToken cancellation)
    {
        byte[] bytes = Encoding.UTF8.GetBytes("data: " + data.ToJsonString(s_json) + "\n\n");
        await context.Response.Body.WriteAsync(bytes, cancellation).ConfigureAwait(false);
        await context.Response.Body.FlushAsync(cancellation).ConfigureAwait(false);
    }

    private static Task WriteJsonAsync(HttpContext context, int status, JsonObject body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(body.ToJsonString(s_json), context.RequestAborted);
    }

    private static Task WriteErrorAsync(HttpContext context, ApiException error)
    {
        if (context.Response.HasStarted) return Task.CompletedTask;
        return WriteJsonAsync(context, error.Status, ErrorBody(error));
    }

    private static JsonObject ErrorBody(ApiException error) => new()
    {
        ["error"] = new JsonObject { ["message"] = error.Message, ["type"] = error.Type, ["param"] = error.Param, ["code"] = error.Code },
    };

    /// <summary>What one request's answers share: id, timestamps, counts, finish reason.</summary>
    private sealed class Answer(bool chat, string model, int promptTokens)
    {
        private readonly string _id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N")[..24];
        private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        public bool Chat { get; } = chat;
        public int PromptTokens { get; } = promptTokens;
        public int CompletionTokens { get; set; }
        public string FinishReason { get; set; } = "length";

        public JsonObject Envelope(string objectName) => new()
        {
            ["id"] = _id,
            ["object"] = objectName,
            ["created"] = _created,
            ["model"] = model,
        };

        public JsonObject Usage() => new()
        {
            ["prompt_tokens"] = PromptTokens,
            ["completion_tokens"] = CompletionTokens,
            ["total_tokens"] = PromptTokens + CompletionTokens,
        };
    }
}
