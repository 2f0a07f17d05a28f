using System.Text;
using System.Text.Json;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Tokenization;

public class TokenStreamDecoderTests
{
    private static IEnumerable<string> GoldenTexts()
    {
        using JsonDocument document = JsonDocument.Parse(File.ReadAllBytes(SharedData.Require("tokenizers", "golden.jsonl")));
        return document.RootElement.EnumerateArray().Select(e => e.GetProperty("text").GetString()!).Distinct().ToList();
    }

    private static List<string> Stream(Tokenizer tokenizer, int[] ids, bool skipSpecialTokens = true)
    {
        TokenStreamDecoder decoder = tokenizer.CreateStreamDecoder(skipSpecialTokens);
        var pieces = ids.Select(decoder.Append).ToList();
        pieces.Add(decoder.Flush());
        return pieces;
    }

    [Theory]
    [InlineData("llama3")]
    [InlineData("qwen3")]
    [InlineData("smollm2")]
    [InlineData("spm-bpe-32k")]
    public void StreamingEqualsDecodingAllAtOnce(string name)
    {
        Tokenizer tokenizer = TestTokenizers.Get(name);
        foreach (string text in GoldenTexts())
        {
            int[] ids = tokenizer.Encode(text, addSpecialTokens: true);
            List<string> pieces = Stream(tokenizer, ids);
            Assert.Equal(tokenizer.Decode(ids, skipSpecialTokens: true), string.Concat(pieces));
            // A character split over several byte tokens is held back until complete, never emitted as U+FFFD.
            Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD'));
        }
    }

    [Fact]
    public void MultiByteCharactersAreHeldBackUntilComplete()
    {
        Tokenizer llama = TestTokenizers.Get("llama3");
        int[] ids = llama.Encode("👍🏽");
        Assert.True(ids.Length > 2, "the emoji should take several byte-level tokens");
        List<string> pieces = Stream(llama, ids);
        Assert.Equal("👍🏽", string.Concat(pieces));
        Assert.All(pieces, p => Assert.True(p.Length == 0 || !char.IsHighSurrogate(p[^1])));
    }

    [Fact]
    public void SentencePieceLeadingSpaceIsStrippedOnlyAtTheStart()
    {
        Tokenizer stories = TestTokenizers.Stories260K();
        int[] ids = stories.Encode("Once upon a time", addSpecialTokens: true);
        List<string> pieces = Stream(stories, ids);
        Assert.Equal(["", "Once", " upon", " a", " time", ""], pieces);
    }

    [Fact]
    public void ByteFallbackCharactersStreamWhole()
    {
        Tokenizer stories = TestTokenizers.Stories260K();
        int[] ids = stories.Encode("naïve 😀!");
        List<string> pieces = Stream(stories, ids);
        Assert.Equal("naïve 😀!", string.Concat(pieces));
        Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD'));
        Assert.Contains("ï", pieces);
        Assert.Contains("😀", pieces);
    }

    [Fact]
    public void FlushEmitsAnIncompleteCharacterAsReplacement()
    {
        Tokenizer stories = TestTokenizers.Stories260K();
        Assert.True(stories.TryGetTokenId("<0xC3>", out int lead));
        TokenStreamDecoder decoder = stories.CreateStreamDecoder();
        Assert.Equal("Hi", string.Concat(stories.Encode("Hi").Select(decoder.Append)));
        Assert.Equal("", decoder.Append(lead));
        Assert.Equal("\uFFFD", decoder.Flush());
        // After a flush the stream starts over, leading-space strip included.
        Assert.Equal("Once", string.Concat(stories.Encode("Once").Select(decoder.Append)));
    }

    [Fact]
    public void SpecialTokensAreKeptWhenAsked()
    {
        Tokenizer qwen = TestTokenizers.Get("qwen3");
        int[] ids = qwen.Encode("<|im_start|>assistant\nHi<|im_end|>");
        var text = new StringBuilder();
        foreach (string piece in Stream(qwen, ids, skipSpecialTokens: false)) text.Append(piece);
        Assert.Equal("<|im_start|>assistant\nHi<|im_end|>", text.ToString());
        Assert.Equal("assistant\nHi", string.Concat(Stream(qwen, ids)));
    }
}
