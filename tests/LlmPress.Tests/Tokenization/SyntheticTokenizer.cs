using System.Text.Json;
using System.Text.Json.Nodes;

namespace LlmPress.Tests.Tokenization;

/// <summary>Writes small hand-made tokenizer.json files into a temporary directory.</summary>
internal sealed class SyntheticTokenizer : IDisposable
{
    public SyntheticTokenizer()
    {
        Directory = Path.Combine(Path.GetTempPath(), "llmpress-tok-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    public string TokenizerPath => Path.Combine(Directory, "tokenizer.json");

    /// <summary>A minimal BPE tokenizer.json: model only, everything else null.</summary>
    public static JsonObject Bpe(IEnumerable<string> vocab, IEnumerable<string> merges, Action<JsonObject>? model = null)
    {
        var vocabObject = new JsonObject();
        int id = 0;
        foreach (string token in vocab) vocabObject[token] = id++;
        var modelObject = new JsonObject
        {
            ["type"] = "BPE",
            ["unk_token"] = null,
            ["fuse_unk"] = false,
            ["byte_fallback"] = false,
            ["vocab"] = vocabObject,
            ["merges"] = new JsonArray(merges.Select(m => (JsonNode?)JsonValue.Create(m)).ToArray()),
        };
        model?.Invoke(modelObject);
        return new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(),
            ["normalizer"] = null,
            ["pre_tokenizer"] = null,
            ["post_processor"] = null,
            ["decoder"] = null,
            ["model"] = modelObject,
        };
    }

    public string Write(JsonNode tokenizerJson)
    {
        File.WriteAllText(TokenizerPath, tokenizerJson.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return TokenizerPath;
    }

    public string WriteText(string fileName, string content)
    {
        string path = Path.Combine(Directory, fileName);
        File.WriteAllText(path, content);
        return path;
    }

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp folder is harmless.
        }
    }
}
