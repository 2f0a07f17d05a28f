using LlmPress.Tokenization;

namespace LlmPress.Tests.Tokenization;

/// <summary>Whole-corpus encodes: exercise the word cache and long inputs (timings are measured separately).</summary>
public class ScaleTests
{
    [Fact]
    public void WikiTextRoundTripsThroughSmolLM2()
    {
        string text = File.ReadAllText(SharedData.Require("data", "wikitext-2-raw", "wiki.test.raw"));
        Tokenizer smol = TestTokenizers.Get("smollm2");
        int[] ids = smol.Encode(text);
        Assert.InRange(ids.Length, text.Length / 6, text.Length / 2);
        Assert.Equal(text, smol.Decode(ids));
        // A second encode is served largely from the word cache and must not differ.
        Assert.Equal(ids, smol.Encode(text));
    }

    [Fact]
    public void ConcurrentEncodesAgree()
    {
        string text = File.ReadAllText(SharedData.Require("data", "wikitext-2-raw", "wiki.test.raw"))[..200_000];
        Tokenizer llama = Tokenizer.Load(SharedData.Require("tokenizers", "llama3")); // fresh, empty cache
        int[][] results = new int[4][];
        Parallel.For(0, results.Length, i => results[i] = llama.Encode(text));
        Assert.All(results, r => Assert.Equal(results[0], r));
        Assert.Equal(text, llama.Decode(results[0]));
    }
}
