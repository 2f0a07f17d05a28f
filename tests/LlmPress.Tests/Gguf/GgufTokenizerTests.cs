using System.Text.Json;
using LlmPress.Export;
using LlmPress.Gguf;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Gguf;

/// <summary>
/// Real tokenizers (shared/tokenizers) written as tokenizer.ggml.* metadata and rebuilt from it give the golden ids of
/// shared/tokenizers/golden.jsonl (from an independent implementation): byte-level BPE with the llama-bpe, qwen2 and
/// smollm pre-tokenizers, and SentencePiece BPE whose merges are derived back from the scores.
/// </summary>
public sealed class GgufTokenizerTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData("llama3", "gpt2", "llama-bpe")]
    [InlineData("qwen3", "gpt2", "qwen2")]
    [InlineData("smollm2", "gpt2", "smollm")]
    [InlineData("spm-bpe-32k", "llama", "default")]
    public void RebuiltTokenizerGivesTheGoldenIds(string name, string model, string pre)
    {
        string file = SharedData.Require("tokenizers", name, "tokenizer.json");
        string goldens = SharedData.Require("tokenizers", "golden.jsonl");
        var original = Tokenizer.Load(file);
        var warnings = new List<string>();
        var metadata = GgufTokenizerMetadata.Create(file, original.VocabSize, warnings);
        string path = _temp.File(name + ".gguf");
        GgufWriter.Write(path, metadata, []);
        using var gguf = GgufFile.Open(path);
        Assert.Equal(model, gguf.GetString("tokenizer.ggml.model"));
        Assert.Equal(pre, gguf.GetString("tokenizer.ggml.pre"));
        Assert.Empty(warnings);
        var rebuilt = GgufTokenizer.Load(gguf);

        using var document = JsonDocument.Parse(File.ReadAllBytes(goldens));
        int checkedTexts = 0;
        foreach (var e in document.RootElement.EnumerateArray())
        {
            if (e.GetProperty("tokenizer").GetString() != name) continue;
            string text = e.GetProperty("text").GetString()!;
            int[] ids = e.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            Assert.True(ids.AsSpan().SequenceEqual(rebuilt.Encode(text)), $"{name}: {JsonSerializer.Serialize(text)}");
            Assert.Equal(original.Decode(ids), rebuilt.Decode(ids));
            Assert.Equal(original.Encode(text, addSpecialTokens: true), rebuilt.Encode(text, addSpecialTokens: true));
            checkedTexts++;
        }
        Assert.True(checkedTexts >= 30, $"only {checkedTexts} golden texts for {name}");
        Assert.Equal(original.BosTokenId, rebuilt.BosTokenId);
        Assert.Equal(original.EosTokenId, rebuilt.EosTokenId);
        Assert.Equal(original.ChatTemplate, rebuilt.ChatTemplate);
    }
}
