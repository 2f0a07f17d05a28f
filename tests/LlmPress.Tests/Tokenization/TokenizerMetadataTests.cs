using LlmPress.Tokenization;

namespace LlmPress.Tests.Tokenization;

public class TokenizerMetadataTests
{
    [Theory]
    [InlineData("llama3", 128256)]
    [InlineData("qwen3", 151669)]
    [InlineData("smollm2", 49152)]
    [InlineData("spm-bpe-32k", 32000)]
    public void VocabSizeCountsVocabularyAndAddedTokens(string name, int expected)
        => Assert.Equal(expected, TestTokenizers.Get(name).VocabSize);

    [Theory]
    [InlineData("llama3", 128000, 128001)]   // tokenizer_config.json
    [InlineData("qwen3", null, 151645)]      // bos_token: null, eos_token: <|im_end|>
    [InlineData("smollm2", null, 0)]         // no tokenizer_config.json: <|endoftext|> is the one well-known EOS
    [InlineData("spm-bpe-32k", 1, 2)]
    public void BosAndEosComeFromConfigOrWellKnownTokens(string name, int? bos, int? eos)
    {
        Tokenizer tokenizer = TestTokenizers.Get(name);
        Assert.Equal(bos, tokenizer.BosTokenId);
        Assert.Equal(eos, tokenizer.EosTokenId);
    }

    [Fact]
    public void Stories260KReadsItsConfig()
    {
        Tokenizer tokenizer = TestTokenizers.Stories260K();
        Assert.Equal(512, tokenizer.VocabSize);
        Assert.Equal(1, tokenizer.BosTokenId);
        Assert.Equal(2, tokenizer.EosTokenId);
        Assert.True(tokenizer.AddBosToken);
        Assert.Null(tokenizer.ChatTemplate);
    }

    [Fact]
    public void ChatTemplatesAreKeptRaw()
    {
        Assert.Contains("<|start_header_id|>", TestTokenizers.Get("llama3").ChatTemplate);
        Assert.Contains("<|im_start|>", TestTokenizers.Get("qwen3").ChatTemplate);
        Assert.Null(TestTokenizers.Get("spm-bpe-32k").ChatTemplate);
        Assert.Null(TestTokenizers.Get("smollm2").ChatTemplate);
    }

    [Fact]
    public void TokenStringsAndIdsRoundTrip()
    {
        Tokenizer llama = TestTokenizers.Get("llama3");
        Assert.True(llama.TryGetTokenId("Ġthe", out int the));
        Assert.Equal("Ġthe", llama.GetTokenString(the));
        Assert.True(llama.TryGetTokenId("<|eot_id|>", out int eot));
        Assert.Equal(128009, eot);
        Assert.Equal("<|eot_id|>", llama.GetTokenString(eot));
        Assert.False(llama.TryGetTokenId("definitely not a token", out _));

        Tokenizer spm = TestTokenizers.Get("spm-bpe-32k");
        Assert.True(spm.TryGetTokenId("<0x0A>", out int newline));
        Assert.Equal(13, newline);
        Assert.Equal("▁▁", spm.GetTokenString(259));
    }

    [Fact]
    public void GetTokenStringRejectsIdsOutsideTheVocabulary()
    {
        Tokenizer tokenizer = TestTokenizers.Get("smollm2");
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.GetTokenString(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.GetTokenString(tokenizer.VocabSize));
    }

    [Fact]
    public void SpecialFlagFollowsAddedTokens()
    {
        Tokenizer qwen = TestTokenizers.Get("qwen3");
        Assert.True(qwen.IsSpecial(151644));   // <|im_start|>
        Assert.False(qwen.IsSpecial(151667));  // <think> is an added token but not special
        Assert.False(qwen.IsSpecial(100));     // ordinary vocabulary
        Assert.False(qwen.IsSpecial(-5));
        Assert.False(qwen.IsSpecial(int.MaxValue));
    }

    [Fact]
    public void LoadAcceptsTheFileOrItsDirectory()
    {
        string file = SharedData.Require("tokenizers", "spm-bpe-32k", "tokenizer.json");
        Tokenizer fromFile = Tokenizer.Load(file);
        Assert.Equal(1, fromFile.BosTokenId); // tokenizer_config.json beside the file is read too
        Assert.Equal(TestTokenizers.Get("spm-bpe-32k").Encode("Hello world"), fromFile.Encode("Hello world"));
    }
}
