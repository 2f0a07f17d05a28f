using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using LlmPress.Evaluation;
using LlmPress.Models;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Serving;

/// <summary>
/// The OpenAI-compatible endpoint over loopback with stories260K. Expected texts come from
/// <see cref="TextGenerator"/> run directly on a separately loaded model, so the HTTP layer, the queue and the
/// stop/finish logic are checked against the generator, not against themselves.
/// </summary>
public class OpenAiServerTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private static string Greedy(string modelDirectory, string prompt, int maxTokens, float temperature = 0, int seed = 0)
    {
        using var model = LlamaModel.Load(modelDirectory);
        var generator = new TextGenerator(model, Tokenizer.Load(modelDirectory));
        return string.Concat(generator.Generate(prompt, new GenerationOptions(maxTokens, temperature, Seed: seed)).Select(t => t.Text));
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> PostAsync(string path, string json)
    {
        using var response = await server.Client.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        string text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    private static string Json(object body) => JsonSerializer.Serialize(body);

    /// <summary>Posts a streaming request and returns the JSON of each "data:" event; asserts the stream ends with [DONE].</summary>
    private async Task<List<JsonElement>> StreamAsync(string path, object body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(Json(body), Encoding.UTF8, "application/json") };
        using var response = await server.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        string text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = new List<JsonElement>();
        foreach (var e in events[..^1])
        {
            Assert.StartsWith("data: ", e);
            chunks.Add(JsonDocument.Parse(e["data: ".Length..]).RootElement.Clone());
        }
        return chunks;
    }

    [Fact]
    public async Task GreedyCompletionEqualsTheGenerator()
    {
        string dir = server.Require();
        var (status, body) = await PostAsync("/v1/completions", Json(new { model = "stories260K", prompt = "Once upon a time", max_tokens = 40, temperature = 0 }));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        Assert.StartsWith("cmpl-", body.GetProperty("id").GetString());
        Assert.Equal("stories260K", body.GetProperty("model").GetString());
        var choice = body.GetProperty("choices")[0];
        Assert.Equal(0, choice.GetProperty("index").GetInt32());
        Assert.Equal(Greedy(dir, "Once upon a time", 40), choice.GetProperty("text").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        var usage = body.GetProperty("usage");
        Assert.Equal(5, usage.GetProperty("prompt_tokens").GetInt32()); // BOS + "Once upon a time" (4 tokens)
        Assert.Equal(40, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(45, usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task PromptAsAnArrayOfOneAndNoModelNameWork()
    {
        string dir = server.Require();
        var (status, body) = await PostAsync("/v1/completions", Json(new { prompt = new[] { "The cat" }, max_tokens = 10, temperature = 0 }));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(Greedy(dir, "The cat", 10), body.GetProperty("choices")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task SeededSamplingMatchesTheGeneratorWithTheSameSeed()
    {
        string dir = server.Require();
        var request = Json(new { prompt = "Once upon a time", max_tokens = 30, temperature = 1.0, seed = 7 });
        var (_, first) = await PostAsync("/v1/completions", request);
        var (_, second) = await PostAsync("/v1/completions", request);
        string text = first.GetProperty("choices")[0].GetProperty("text").GetString()!;
        Assert.Equal(text, second.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(Greedy(dir, "Once upon a time", 30, temperature: 1, seed: 7), text);
    }

    [Fact]
    public async Task StreamedChunksConcatenateToTheNonStreamingText()
    {
        server.Require();
        var (_, whole) = await PostAsync("/v1/completions", Json(new { prompt = "Lily and Ben", max_tokens = 30, temperature = 0 }));
        var chunks = await StreamAsync("/v1/completions", new { prompt = "Lily and Ben", max_tokens = 30, temperature = 0, stream = true, stream_options = new { include_usage = true } });

        var text = new StringBuilder();
        foreach (var chunk in chunks[..^2])
        {
            Assert.Equal("text_completion", chunk.GetProperty("object").GetString());
            Assert.Equal(JsonValueKind.Null, chunk.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind);
            text.Append(chunk.GetProperty("choices")[0].GetProperty("text").GetString());
        }
        Assert.True(chunks.Count > 10, "expected one chunk per token or so");
        Assert.Equal(whole.GetProperty("choices")[0].GetProperty("text").GetString(), text.ToString());
        Assert.Equal("length", chunks[^2].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        // stream_options.include_usage: a last chunk with no choices and the counts.
        Assert.Equal(0, chunks[^1].GetProperty("choices").GetArrayLength());
        Assert.Equal(30, chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
    }

    [Fact]
    public async Task ChatUsesThePlainFormatForATokenizerWithoutTemplate()
    {
        string dir = server.Require();
        var (status, body) = await PostAsync("/v1/chat/completions", Json(new
        {
            messages = new[] { new { role = "system", content = "Stories for kids." }, new { role = "user", content = "Tell me a story." } },
            max_tokens = 25,
            temperature = 0,
        }));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        Assert.StartsWith("chatcmpl-", body.GetProperty("id").GetString());
        var message = body.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal("assistant", message.GetProperty("role").GetString());
        const string prompt = "System: Stories for kids.\nUser: Tell me a story.\nAssistant:";
        Assert.Equal(Greedy(dir, prompt, 25), message.GetProperty("content").GetString());
        var tokenizer = Tokenizer.Load(dir);
        Assert.Equal(1 + tokenizer.Encode(prompt).Length, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public async Task ChatStreamingSendsTheRoleThenContentDeltas()
    {
        server.Require();
        var request = new { messages = new[] { new { role = "user", content = "Hi!" } }, max_tokens = 20, temperature = 0 };
        var (_, whole) = await PostAsync("/v1/chat/completions", Json(request));
        var chunks = await StreamAsync("/v1/chat/completions", new { request.messages, request.max_tokens, request.temperature, stream = true });

        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.Equal("assistant", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        string content = string.Concat(chunks[1..^1].Select(c => c.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString()));
        Assert.Equal(whole.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString(), content);
        var last = chunks[^1].GetProperty("choices")[0];
        Assert.Equal("length", last.GetProperty("finish_reason").GetString());
        Assert.Empty(last.GetProperty("delta").EnumerateObject());
    }

    [Fact]
    public async Task StopSequencesEndTheTextBeforeThem()
    {
        string dir = server.Require();
        string full = Greedy(dir, "Once upon a time", 40);
        const string stop = "girl named"; // several tokens, so it is only recognisable across token boundaries
        int cut = full.IndexOf(stop, StringComparison.Ordinal);
        Assert.True(cut > 0, $"the greedy story changed: {full}");

        var (_, body) = await PostAsync("/v1/completions", Json(new { prompt = "Once upon a time", max_tokens = 40, temperature = 0, stop = new[] { "zebra", stop } }));
        var choice = body.GetProperty("choices")[0];
        Assert.Equal(full[..cut], choice.GetProperty("text").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.True(body.GetProperty("usage").GetProperty("completion_tokens").GetInt32() < 40);

        var chunks = await StreamAsync("/v1/completions", new { prompt = "Once upon a time", max_tokens = 40, temperature = 0, stop, stream = true });
        Assert.Equal(full[..cut], string.Concat(chunks[..^1].Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString())));
        Assert.Equal("stop", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task MaxTokensEndsWithLength()
    {
        server.Require();
        var (_, body) = await PostAsync("/v1/chat/completions", Json(new { messages = new[] { new { role = "user", content = "Go" } }, max_tokens = 7, temperature = 0 }));
        Assert.Equal("length", body.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(7, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task ChatWithoutMaxTokensFillsTheContext()
    {
        server.Require();
        var (_, body) = await PostAsync("/v1/chat/completions", Json(new { messages = new[] { new { role = "user", content = "Go" } }, temperature = 0 }));
        var usage = body.GetProperty("usage");
        // No end-of-sequence from this model in 500 greedy tokens, so the completion fills the 512-token context.
        Assert.Equal(512, usage.GetProperty("total_tokens").GetInt32());
        Assert.Equal("length", body.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Theory]
    [InlineData("/v1/completions", "{\"prompt\": \"x\",", 400, null)]
    [InlineData("/v1/completions", "[1, 2]", 400, null)]
    [InlineData("/v1/completions", "{\"max_tokens\": 5}", 400, "prompt")]
    [InlineData("/v1/completions", "{\"prompt\": [\"a\", \"b\"]}", 400, "prompt")]
    [InlineData("/v1/completions", "{\"prompt\": \"x\", \"n\": 2}", 400, "n")]
    [InlineData("/v1/completions", "{\"prompt\": \"x\", \"echo\": true}", 400, "echo")]
    [InlineData("/v1/completions", "{\"prompt\": \"x\", \"temperature\": 3}", 400, "temperature")]
    [InlineData("/v1/completions", "{\"prompt\": \"x\", \"top_p\": 0}", 400, "top_p")]
    [InlineData("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 0}", 400, "max_tokens")]
    [InlineData("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": \"ten\"}", 400, "max_tokens")]
    [InlineData("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 600}", 400, "prompt")]
    [InlineData("/v1/completions", "{\"prompt\": \"x\", \"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}", 400, "stop")]
    [InlineData("/v1/completions", "{\"prompt\": \"x\", \"logprobs\": 2}", 400, "logprobs")]
    [InlineData("/v1/completions", "{\"prompt\": \"x\", \"model\": \"gpt-4\"}", 404, "model")]
    [InlineData("/v1/chat/completions", "{\"model\": \"stories260K\"}", 400, "messages")]
    [InlineData("/v1/chat/completions", "{\"messages\": []}", 400, "messages")]
    [InlineData("/v1/chat/completions", "{\"messages\": [{\"role\": \"tool\", \"content\": \"4\"}]}", 400, "messages[0].role")]
    [InlineData("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\"}]}", 400, "messages[0].content")]
    [InlineData("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": [{}]}", 400, "tools")]
    public async Task BadRequestsGetOpenAiStyleErrors(string path, string body, int status, string? param)
    {
        server.Require();
        var (code, json) = await PostAsync(path, body);
        Assert.Equal(status, (int)code);
        var error = json.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        if (param is null) Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
        else Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.True(error.TryGetProperty("code", out _));
    }

    [Fact]
    public async Task ContextOverflowNamesTheNumbers()
    {
        server.Require();
        var (_, json) = await PostAsync("/v1/completions", Json(new { prompt = "Once upon a time", max_tokens = 510 }));
        var error = json.GetProperty("error");
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        Assert.Contains("512", error.GetProperty("message").GetString());
        Assert.Contains("515", error.GetProperty("message").GetString()); // 5 prompt + 510
    }

    [Fact]
    public async Task ChatPromptLongerThanTheContextIsRefused()
    {
        server.Require();
        string longText = string.Concat(Enumerable.Repeat("Once upon a time there was a dog. ", 100));
        var (status, json) = await PostAsync("/v1/chat/completions", Json(new { messages = new[] { new { role = "user", content = longText } } }));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var error = json.GetProperty("error");
        Assert.Equal("messages", error.GetProperty("param").GetString());
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        Assert.Contains("no room for a completion", error.GetProperty("message").GetString());
    }

    [Theory]
    [InlineData("/v1/engines", HttpStatusCode.NotFound, "/v1/engines")]            // unknown path: 404 naming it
    [InlineData("/v1/chat/completions", HttpStatusCode.MethodNotAllowed, "POST")] // GET on a completion endpoint: 405
    public async Task WrongPathsAndMethodsAreJsonErrors(string path, HttpStatusCode expected, string mentioned)
    {
        server.Require();
        using var response = await server.Client.GetAsync(path, TestContext.Current.CancellationToken);
        Assert.Equal(expected, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        Assert.Contains(mentioned, doc.RootElement.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task ModelsAndHealthNameTheServedModel()
    {
        server.Require();
        using var models = JsonDocument.Parse(await server.Client.GetStringAsync("/v1/models", TestContext.Current.CancellationToken));
        Assert.Equal("list", models.RootElement.GetProperty("object").GetString());
        Assert.Equal("stories260K", models.RootElement.GetProperty("data")[0].GetProperty("id").GetString());
        using var health = JsonDocument.Parse(await server.Client.GetStringAsync("/health", TestContext.Current.CancellationToken));
        Assert.Equal("ok", health.RootElement.GetProperty("status").GetString());
    }

    [Fact]
    public async Task ConcurrentRequestsAreServedOneAfterTheOtherAndBothComplete()
    {
        string dir = server.Require();
        Task<(HttpStatusCode, JsonElement)> Ask(string prompt) =>
            PostAsync("/v1/completions", Json(new { prompt, max_tokens = 120, temperature = 0 }));
        var a = Ask("The dog");
        var b = Ask("The bird");
        var c = StreamAsync("/v1/completions", new { prompt = "The fish", max_tokens = 120, temperature = 0, stream = true });
        await Task.WhenAll(a, b, c);
        Assert.Equal(Greedy(dir, "The dog", 120), (await a).Item2.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(Greedy(dir, "The bird", 120), (await b).Item2.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(Greedy(dir, "The fish", 120), string.Concat((await c)[..^1].Select(x => x.GetProperty("choices")[0].GetProperty("text").GetString())));
    }

    [Fact]
    public async Task ClientDisconnectStopsGeneration()
    {
        server.Require();
        var ct = TestContext.Current.CancellationToken;
        long before = server.Model.GeneratedTokens;
        // A 500-token stream over a raw socket, reset after the first chunk. (HttpClient would not do: disposing a
        // half-read response may drain the rest to reuse the connection, so the server would never see a hang-up.)
        using (var tcp = new System.Net.Sockets.TcpClient())
        {
            await tcp.ConnectAsync(server.Client.BaseAddress!.Host, server.Client.BaseAddress.Port, ct);
            var stream = tcp.GetStream();
            byte[] body = Encoding.UTF8.GetBytes(Json(new { prompt = "", max_tokens = 500, temperature = 0, stream = true }));
            byte[] head = Encoding.ASCII.GetBytes($"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\n\r\n");
            await stream.WriteAsync(head, ct);
            await stream.WriteAsync(body, ct);
            var received = new StringBuilder();
            var buffer = new byte[4096];
            while (!received.ToString().Contains("data: {"))
            {
                int n = await stream.ReadAsync(buffer, ct);
                Assert.True(n > 0, "the server closed the connection before the first chunk");
                received.Append(Encoding.UTF8.GetString(buffer, 0, n));
            }
            tcp.Client.LingerState = new System.Net.Sockets.LingerOption(true, 0); // close with a reset, at once
        }
        // The server notices, stops generating and frees the model for the next request.
        bool Disconnected() => server.Log.Any(line => line.Contains("client disconnected"));
        bool Finished() => server.Model.Queued == 0 && server.Model.GeneratedTokens - before >= 500;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!Disconnected() && !Finished() && DateTime.UtcNow < deadline) await Task.Delay(50, ct);
        while (server.Model.Queued > 0 && DateTime.UtcNow < deadline) await Task.Delay(10, ct); // the model is released after the last pass
        long made = server.Model.GeneratedTokens - before;
        // stories260K makes 500 tokens in well under a second; on a slow or busy machine (Debug builds in CI) the small
        // chunks can all fit in the socket buffers before the reset is seen, so a run that finished without noticing
        // the hang-up is inconclusive, not wrong.
        if (made >= 500 && !Disconnected()) Assert.Skip($"generation finished all {made} tokens before the hang-up reached the server; nothing to observe");
        Assert.True(Disconnected(), "no disconnect logged:\n" + string.Join("\n", server.Log));
        Assert.True(made < 500, $"generation ran on to {made} tokens after the client left");
        var (status, _) = await PostAsync("/v1/completions", Json(new { prompt = "x", max_tokens = 3 }));
        Assert.Equal(HttpStatusCode.OK, status);
    }
}
