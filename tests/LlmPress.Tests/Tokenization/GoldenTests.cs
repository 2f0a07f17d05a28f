using System.Text;
using System.Text.Json;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Tokenization;

/// <summary>shared/tokenizers/golden.jsonl: 32 texts × 4 tokenizers, ids from an independent implementation.</summary>
public class GoldenTests
{
    private sealed record Golden(string Tokenizer, string Text, int[] Ids);

    private static List<Golden> LoadGoldens()
    {
        string path = SharedData.Require("tokenizers", "golden.jsonl");
        // Despite the extension the file is one JSON array (one object per line, joined with commas).
        using JsonDocument document = JsonDocument.Parse(File.ReadAllBytes(path));
        var goldens = new List<Golden>();
        foreach (JsonElement e in document.RootElement.EnumerateArray())
        {
            goldens.Add(new Golden(
                e.GetProperty("tokenizer").GetString()!,
                e.GetProperty("text").GetString()!,
                e.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray()));
        }
        return goldens;
    }

    [Fact]
    public void AllGoldenEncodingsMatch()
    {
        List<Golden> goldens = LoadGoldens();
        Assert.Equal(128, goldens.Count);
        var failures = new StringBuilder();
        int mismatches = 0;
        foreach (Golden golden in goldens)
        {
            int[] actual = TestTokenizers.Get(golden.Tokenizer).Encode(golden.Text);
            if (actual.AsSpan().SequenceEqual(golden.Ids)) continue;
            mismatches++;
            failures.AppendLine($"[{golden.Tokenizer}] {JsonSerializer.Serialize(golden.Text)}");
            failures.AppendLine($"    expected [{string.Join(',', golden.Ids)}]");
            failures.AppendLine($"    actual   [{string.Join(',', actual)}]");
        }
        Assert.True(mismatches == 0, $"{mismatches} of {goldens.Count} golden encodings differ:\n{failures}");
    }

    [Theory]
    [InlineData("llama3")]
    [InlineData("qwen3")]
    [InlineData("smollm2")]
    public void ByteLevelDecodeRoundTripsEveryGoldenText(string name)
    {
        Tokenizer tokenizer = TestTokenizers.Get(name);
        foreach (Golden golden in LoadGoldens().Where(g => g.Tokenizer == name))
        {
            Assert.Equal(golden.Text, tokenizer.Decode(golden.Ids));
            Assert.Equal(golden.Text, tokenizer.Decode(tokenizer.Encode(golden.Text)));
        }
    }
}
