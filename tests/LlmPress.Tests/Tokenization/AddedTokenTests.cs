using LlmPress.Tokenization;

namespace LlmPress.Tests.Tokenization;

public class AddedTokenTests
{
    [Fact]
    public void SpecialTokensInTextMapToTheirIds()
    {
        Tokenizer llama = TestTokenizers.Get("llama3");
        int[] ids = llama.Encode("<|begin_of_text|>Hello<|eot_id|> world");
        Assert.Equal(128000, ids[0]);
        Assert.Equal(llama.Encode("Hello"), ids[1..^2]);
        Assert.Equal(128009, ids[^2]);
        Assert.Equal(llama.Encode(" world"), ids[^1..]);
    }

    [Fact]
    public void LongestAddedTokenWins()
    {
        // Both "<|reserved_special_token_1|>" and "<|reserved_special_token_10|>" start the same way.
        Tokenizer llama = TestTokenizers.Get("llama3");
        Assert.True(llama.TryGetTokenId("<|reserved_special_token_10|>", out int ten));
        Assert.Equal([ten], llama.Encode("<|reserved_special_token_10|>"));
    }

    [Fact]
    public void TextAroundAddedTokensIsNormalizedPieceByPiece()
    {
        // tokenizers splits on added tokens first, so each piece gets its own SentencePiece "▁" prefix.
        Tokenizer spm = TestTokenizers.Get("spm-bpe-32k");
        int[] ids = spm.Encode("Hello</s>world");
        Assert.Equal([.. spm.Encode("Hello"), 2, .. spm.Encode("world")], ids);
    }

    [Fact]
    public void ChatMarkupEncodesAndDecodes()
    {
        Tokenizer qwen = TestTokenizers.Get("qwen3");
        const string text = "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello!";
        int[] ids = qwen.Encode(text);
        Assert.Equal(151644, ids[0]);
        Assert.Contains(151645, ids);
        Assert.Contains(151667, ids);
        Assert.Equal(text, qwen.Decode(ids));
        // Special markers go, the non-special <think> stays.
        Assert.Equal("user\nHi there\nassistant\n<think>\n\n</think>\n\nHello!", qwen.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void AddSpecialTokensFollowsTemplateProcessing()
    {
        Tokenizer spm = TestTokenizers.Get("spm-bpe-32k");
        Assert.Equal([1, 22557, 1526], spm.Encode("Hello world", addSpecialTokens: true));
        Assert.Equal([1], spm.Encode("", addSpecialTokens: true));
        Tokenizer stories = TestTokenizers.Stories260K();
        Assert.Equal(1, stories.Encode("Once", addSpecialTokens: true)[0]);
    }

    [Theory]
    [InlineData("llama3")]   // post_processor ByteLevel only, and no add_bos_token in tokenizer_config.json
    [InlineData("qwen3")]
    [InlineData("smollm2")]
    public void ByteLevelPostProcessorAddsNothing(string name)
    {
        Tokenizer tokenizer = TestTokenizers.Get(name);
        Assert.Equal(tokenizer.Encode("Hello world"), tokenizer.Encode("Hello world", addSpecialTokens: true));
    }

    [Fact]
    public void DecodeSkipsSpecialTokensOnRequest()
    {
        Tokenizer spm = TestTokenizers.Get("spm-bpe-32k");
        int[] ids = spm.Encode("Hello world", addSpecialTokens: true);
        Assert.Equal("<s> Hello world", spm.Decode(ids));
        Assert.Equal("Hello world", spm.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void DecodeIgnoresIdsOutsideTheVocabulary()
    {
        // As tokenizers does: a model whose embedding is padded beyond the tokenizer can emit such ids.
        Tokenizer qwen = TestTokenizers.Get("qwen3");
        int[] ids = [.. qwen.Encode("Hello"), 151900, -1];
        Assert.Equal("Hello", qwen.Decode(ids));
    }
}
