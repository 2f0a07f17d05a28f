using System.Text.Json;
using LlmPress.Tokenization;

namespace LlmPress.Cli.Serving;

/// <summary>
/// The fields of a /v1/completions or /v1/chat/completions body that LlmPress honours, validated. Parameters that
/// would change the answer and are not implemented (n &gt; 1, echo, logprobs, penalties, tools, …) are refused with a
/// 400 rather than silently ignored; harmless ones (user, metadata, …) are ignored.
/// </summary>
/// <param name="Prompt">Completions: the text to continue.</param>
/// <param name="Messages">Chat: the conversation so far.</param>
/// <param name="MaxTokens">Tokens to generate at most; null = the API default (16 for completions, the rest of the context for chat).</param>
/// <param name="Temperature">0 = greedy; default 1 as in the OpenAI API.</param>
/// <param name="TopP">Nucleus mass; default 1.</param>
/// <param name="Seed">Sampling seed; a random one when the request has none.</param>
/// <param name="Stop">Up to 4 stop sequences; the text ends before the first one.</param>
/// <param name="Stream">Answer as Server-Sent Events.</param>
/// <param name="IncludeUsage">stream_options.include_usage: a last chunk carries the token counts.</param>
internal sealed record CompletionRequest(
    string? Prompt,
    IReadOnlyList<ChatMessage>? Messages,
    int? MaxTokens,
    float Temperature,
    float TopP,
    int Seed,
    IReadOnlyList<string> Stop,
    bool Stream,
    bool IncludeUsage)
{
    private const int MaxStopSequences = 4;

    /// <summary>Reads and validates a request body.</summary>
    /// <exception cref="ApiException">400 for a malformed or unsupported field, 404 for another model's name.</exception>
    public static CompletionRequest Parse(JsonElement body, bool chat, string modelId)
    {
        if (body.ValueKind != JsonValueKind.Object)
            throw ApiException.BadRequest($"The request body must be a JSON object, not {Describe(body)}.");

        if (body.TryGetProperty("model", out var model) && model.ValueKind != JsonValueKind.Null)
        {
            if (model.ValueKind != JsonValueKind.String) throw ApiException.BadRequest("'model' must be a string.", "model");
            if (model.GetString() != modelId)
                throw new ApiException(404, $"The model '{model.GetString()}' does not exist; this server serves '{modelId}' (or omit 'model').", "model", "model_not_found");
        }

        string? prompt = null;
        List<ChatMessage>? messages = null;
        if (chat) messages = ReadMessages(body);
        else prompt = ReadPrompt(body);

        int? maxTokens = OptionalInt(body, "max_tokens") ?? (chat ? OptionalInt(body, "max_completion_tokens") : null);
        if (maxTokens < 1)
            throw ApiException.BadRequest($"'max_tokens' must be at least 1, not {maxTokens}.", "max_tokens");
        float temperature = OptionalFloat(body, "temperature") ?? 1f;
        if (!(temperature >= 0 && temperature <= 2))
            throw ApiException.BadRequest($"'temperature' must be between 0 and 2, not {temperature}.", "temperature");
        float topP = OptionalFloat(body, "top_p") ?? 1f;
        if (!(topP > 0 && topP <= 1))
            throw ApiException.BadRequest($"'top_p' must be in (0, 1], not {topP}.", "top_p");
        int seed = OptionalInt(body, "seed") ?? Random.Shared.Next();

        int n = OptionalInt(body, "n") ?? 1;
        if (n != 1) throw ApiException.BadRequest($"'n' must be 1 (one choice per request), not {n}.", "n");
        if (!chat && OptionalBool(body, "echo") == true)
            throw ApiException.BadRequest("'echo' is not supported; the prompt is not repeated in the answer.", "echo");
        RefuseUnsupported(body, chat);

        bool stream = OptionalBool(body, "stream") ?? false;
        bool includeUsage = false;
        if (body.TryGetProperty("stream_options", out var options) && options.ValueKind == JsonValueKind.Object)
            includeUsage = OptionalBool(options, "include_usage", "stream_options.include_usage") ?? false;

        return new CompletionRequest(prompt, messages, maxTokens, temperature, topP, seed, ReadStop(body), stream, includeUsage);
    }

    private static string ReadPrompt(JsonElement body)
    {
        if (!body.TryGetProperty("prompt", out var prompt) || prompt.ValueKind == JsonValueKind.Null)
            throw ApiException.BadRequest("'prompt' is required.", "prompt");
        if (prompt.ValueKind == JsonValueKind.String) return prompt.GetString()!;
        if (prompt.ValueKind == JsonValueKind.Array && prompt.GetArrayLength() == 1 && prompt[0].ValueKind == JsonValueKind.String)
            return prompt[0].GetString()!;
        throw ApiException.BadRequest("'prompt' must be a string or an array of one string (batches and token arrays are not supported).", "prompt");
    }

    private static List<ChatMessage> ReadMessages(JsonElement body)
    {
        if (!body.TryGetProperty("messages", out var messages) || messages.ValueKind == JsonValueKind.Null)
            throw ApiException.BadRequest("'messages' is required.", "messages");
        if (messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
            throw ApiException.BadRequest("'messages' must be a non-empty array of {role, content}.", "messages");
        var list = new List<ChatMessage>(messages.GetArrayLength());
        int i = 0;
        foreach (var message in messages.EnumerateArray())
        {
            string where = $"messages[{i++}]";
            if (message.ValueKind != JsonValueKind.Object)
                throw ApiException.BadRequest($"'{where}' must be an object with 'role' and 'content'.", where);
            string role = message.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : "";
            if (role == "developer") role = "system"; // the OpenAI API's newer name for the system role
            if (role is not ("system" or "user" or "assistant"))
                throw ApiException.BadRequest($"'{where}.role' must be system, user or assistant, not '{role}'.", where + ".role");
            list.Add(new ChatMessage(role, ReadContent(message, where)));
        }
        return list;
    }

    // content: a string, or an array of parts of which only {"type": "text", "text": …} is supported.
    private static string ReadContent(JsonElement message, string where)
    {
        if (!message.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null)
            throw ApiException.BadRequest($"'{where}.content' is required.", where + ".content");
        if (content.ValueKind == JsonValueKind.String) return content.GetString()!;
        if (content.ValueKind == JsonValueKind.Array)
        {
            var text = new System.Text.StringBuilder();
            foreach (var part in content.EnumerateArray())
            {
                if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.GetString() != "text"
                    || !part.TryGetProperty("text", out var partText) || partText.ValueKind != JsonValueKind.String)
                    throw ApiException.BadRequest($"'{where}.content' parts must be {{\"type\": \"text\", \"text\": …}}; images and audio are not supported.", where + ".content");
                text.Append(partText.GetString());
            }
            return text.ToString();
        }
        throw ApiException.BadRequest($"'{where}.content' must be a string or an array of text parts.", where + ".content");
    }

    private static List<string> ReadStop(JsonElement body)
    {
        var stops = new List<string>();
        if (!body.TryGetProperty("stop", out var stop) || stop.ValueKind == JsonValueKind.Null) return stops;
        if (stop.ValueKind == JsonValueKind.String) stops.Add(stop.GetString()!);
        else if (stop.ValueKind == JsonValueKind.Array)
            foreach (var s in stop.EnumerateArray())
            {
                if (s.ValueKind != JsonValueKind.String) throw ApiException.BadRequest("'stop' must be a string or an array of strings.", "stop");
                stops.Add(s.GetString()!);
            }
        else throw ApiException.BadRequest("'stop' must be a string or an array of strings.", "stop");
        if (stops.Count > MaxStopSequences)
            throw ApiException.BadRequest($"'stop' has {stops.Count} sequences; at most {MaxStopSequences} are allowed.", "stop");
        if (stops.Exists(s => s.Length == 0)) throw ApiException.BadRequest("'stop' sequences must not be empty.", "stop");
        return stops;
    }

    // Parameters that would change the result and that LlmPress does not implement: refused, not ignored.
    private static void RefuseUnsupported(JsonElement body, bool chat)
    {
        foreach (string name in (string[])["presence_penalty", "frequency_penalty"])
            if (OptionalFloat(body, name) is { } v && v != 0)
                throw ApiException.BadRequest($"'{name}' is not supported (only 0).", name);
        if (OptionalInt(body, "best_of") is { } bestOf && bestOf != 1)
            throw ApiException.BadRequest("'best_of' is not supported (only 1).", "best_of");
        if (body.TryGetProperty("logprobs", out var logprobs) && logprobs.ValueKind is not (JsonValueKind.Null or JsonValueKind.False))
            throw ApiException.BadRequest("'logprobs' is not supported.", "logprobs");
        if (body.TryGetProperty("logit_bias", out var bias) && bias.ValueKind == JsonValueKind.Object && bias.EnumerateObject().Any())
            throw ApiException.BadRequest("'logit_bias' is not supported.", "logit_bias");
        if (!chat) return;
        foreach (string name in (string[])["tools", "functions"])
            if (body.TryGetProperty(name, out var tools) && tools.ValueKind == JsonValueKind.Array && tools.GetArrayLength() > 0)
                throw ApiException.BadRequest($"'{name}' (function calling) is not supported.", name);
        if (body.TryGetProperty("response_format", out var format) && format.ValueKind == JsonValueKind.Object
            && format.TryGetProperty("type", out var type) && type.GetString() != "text")
            throw ApiException.BadRequest("'response_format' other than text is not supported.", "response_format");
    }

    private static int? OptionalInt(JsonElement body, string name)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int i)) return i;
        throw ApiException.BadRequest($"'{name}' must be an integer, not {Describe(value)}.", name);
    }

    private static float? OptionalFloat(JsonElement body, string name)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind == JsonValueKind.Number) return (float)value.GetDouble();
        throw ApiException.BadRequest($"'{name}' must be a number, not {Describe(value)}.", name);
    }

    private static bool? OptionalBool(JsonElement body, string name, string? param = null)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind is JsonValueKind.True or JsonValueKind.False) return value.GetBoolean();
        throw ApiException.BadRequest($"'{param ?? name}' must be true or false, not {Describe(value)}.", param ?? name);
    }

    private static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => $"the string \"{value.GetString()}\"",
        JsonValueKind.Number => $"the number {value.GetRawText()}",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => value.GetRawText(),
    };
}
