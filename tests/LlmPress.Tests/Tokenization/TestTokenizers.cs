using System.Collections.Concurrent;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Tokenization;

/// <summary>The shared tokenizers, loaded once per test run (Llama-3's and Qwen3's files are 9–11 MB).</summary>
internal static class TestTokenizers
{
    private static readonly ConcurrentDictionary<string, Lazy<Tokenizer>> s_loaded = new();

    /// <summary>shared/tokenizers/&lt;name&gt;, or the test is skipped when shared/ is absent.</summary>
    public static Tokenizer Get(string name)
    {
        string directory = SharedData.Require("tokenizers", name);
        return s_loaded.GetOrAdd(directory, d => new Lazy<Tokenizer>(() => Tokenizer.Load(d))).Value;
    }

    /// <summary>The stories260K tokenizer (shared/models/stories260K).</summary>
    public static Tokenizer Stories260K()
    {
        string directory = SharedData.Require("models", "stories260K", "tokenizer.json");
        return s_loaded.GetOrAdd(directory, d => new Lazy<Tokenizer>(() => Tokenizer.Load(d))).Value;
    }
}
