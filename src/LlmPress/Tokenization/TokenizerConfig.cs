using System.Text.Json;

namespace LlmPress.Tokenization;

/// <summary>The fields LlmPress uses from a Hugging Face tokenizer_config.json.</summary>
internal sealed record TokenizerConfig
{
    /// <summary>True when the file has a bos_token key (its value may be null: the model has no BOS, e.g. Qwen).</summary>
    public bool HasBosToken { get; init; }

    public string? BosToken { get; init; }

    public bool HasEosToken { get; init; }

    public string? EosToken { get; init; }

    /// <summary>chat_template as written (a Jinja template), or the "default" one of a named list.</summary>
    public string? ChatTemplate { get; init; }

    public bool? AddBosToken { get; init; }

    public bool? AddEosToken { get; init; }

    /// <exception cref="InvalidDataException">The file is not valid JSON or a field has the wrong type.</exception>
    public static TokenizerConfig Load(string path)
    {
        using JsonDocument document = TokenizerJsonReader.ParseFile(path);
        JsonElement root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            TokenizerThrow.InvalidData(path, $"the top level is a JSON {root.ValueKind}, expected an object");

        var config = new TokenizerConfig();
        if (root.TryGetProperty("bos_token", out JsonElement bos))
            config = config with { HasBosToken = true, BosToken = ReadTokenName(path, "bos_token", bos) };
        if (root.TryGetProperty("eos_token", out JsonElement eos))
            config = config with { HasEosToken = true, EosToken = ReadTokenName(path, "eos_token", eos) };
        if (root.TryGetProperty("chat_template", out JsonElement template))
            config = config with { ChatTemplate = ReadChatTemplate(path, template) };
        return config with
        {
            AddBosToken = ReadOptionalBool(path, root, "add_bos_token"),
            AddEosToken = ReadOptionalBool(path, root, "add_eos_token"),
        };
    }

    // "<s>" or {"content": "<s>", "lstrip": false, ...} (an AddedToken), or null.
    private static string? ReadTokenName(string path, string field, JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Null => null,
        JsonValueKind.String => value.GetString(),
        JsonValueKind.Object when value.TryGetProperty("content", out JsonElement content)
            && content.ValueKind == JsonValueKind.String => content.GetString(),
        _ => TokenizerThrow.InvalidData<string?>(path, $"{field} is a JSON {value.ValueKind}, expected a string or an object with \"content\""),
    };

    private static string? ReadChatTemplate(string path, JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Null:
                return null;
            case JsonValueKind.String:
                return value.GetString();
            case JsonValueKind.Array:
                // Newer files: [{"name": "default", "template": "..."}, {"name": "tool_use", ...}].
                string? first = null;
                foreach (JsonElement entry in value.EnumerateArray())
                {
                    JsonElement t = default;
                    if (entry.ValueKind != JsonValueKind.Object
                        || !entry.TryGetProperty("template", out t) || t.ValueKind != JsonValueKind.String)
                        TokenizerThrow.InvalidData(path, "chat_template entries must be objects with a string \"template\"");
                    first ??= t.GetString();
                    if (entry.TryGetProperty("name", out JsonElement name) && name.ValueEquals("default")) return t.GetString();
                }
                return first;
            default:
                return TokenizerThrow.InvalidData<string?>(path, $"chat_template is a JSON {value.ValueKind}, expected a string");
        }
    }

    private static bool? ReadOptionalBool(string path, JsonElement root, string field)
    {
        if (!root.TryGetProperty(field, out JsonElement value)) return null;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Null => null,
            _ => TokenizerThrow.InvalidData<bool?>(path, $"{field} is a JSON {value.ValueKind}, expected true or false"),
        };
    }
}
