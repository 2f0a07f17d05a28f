using System.Text.Json.Nodes;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Tokenization;

/// <summary>lstrip, rstrip, single_word and normalized, after tokenizers' added_vocabulary tests.</summary>
public class AddedTokenOptionsTests
{
    private static Tokenizer Build(SyntheticTokenizer dir, params JsonObject[] addedTokens)
    {
        // Character-level vocabulary (no merges) so the ids show exactly which text went to the model.
        var vocab = new List<string> { "<unk>" };
        for (char c = ' '; c <= '~'; c++) vocab.Add(c.ToString());
        vocab.Add("\t");
        JsonObject json = SyntheticTokenizer.Bpe(vocab, [], m => m["unk_token"] = "<unk>");
        json["added_tokens"] = new JsonArray(addedTokens);
        return Tokenizer.Load(dir.Write(json));
    }

    private static JsonObject Token(int id, string content, bool special = false, bool lstrip = false,
        bool rstrip = false, bool singleWord = false, bool normalized = false) => new()
    {
        ["id"] = id,
        ["content"] = content,
        ["special"] = special,
        ["lstrip"] = lstrip,
        ["rstrip"] = rstrip,
        ["single_word"] = singleWord,
        ["normalized"] = normalized,
    };

    private static string Render(Tokenizer tokenizer, int[] ids) =>
        string.Join("|", ids.Select(id => id >= 200 ? $"[{tokenizer.GetTokenString(id)}]" : tokenizer.GetTokenString(id)));

    [Fact]
    public void LStripAndRStripSwallowAdjacentWhitespace()
    {
        using var dir = new SyntheticTokenizer();
        Tokenizer tokenizer = Build(dir, Token(200, "<mask>", lstrip: true, rstrip: true));
        Assert.Equal("H|i|[<mask>]|t|h|e|r|e|[<mask>]", Render(tokenizer, tokenizer.Encode("Hi <mask> there\t<mask>\t")));
    }

    [Fact]
    public void SingleWordTokensDoNotMatchInsideWords()
    {
        using var dir = new SyntheticTokenizer();
        Tokenizer tokenizer = Build(dir, Token(200, "<mask>", singleWord: true));
        // Matches at the start, between spaces and at the end; not glued to "A" or "ony".
        int[] ids = tokenizer.Encode("<mask> My name <mask> A<mask> <mask>ony <mask>");
        Assert.Equal("[<mask>]| |M|y| |n|a|m|e| |[<mask>]| |A|<|m|a|s|k|>| |<|m|a|s|k|>|o|n|y| |[<mask>]", Render(tokenizer, ids));
        // Without a decoder, tokenizers joins the tokens with spaces.
        Assert.Equal("<mask>   M y  ", tokenizer.Decode(ids[..5]));
    }

    [Fact]
    public void SpecialAndNormalizedFlagsAreHonoured()
    {
        using var dir = new SyntheticTokenizer();
        Tokenizer tokenizer = Build(dir, Token(200, "[CLS]", special: true), Token(201, "name", normalized: true));
        int[] ids = tokenizer.Encode("[CLS] My name");
        Assert.Equal("[[CLS]]| |M|y| |[name]", Render(tokenizer, ids));
        Assert.True(tokenizer.IsSpecial(200));
        Assert.False(tokenizer.IsSpecial(201));
    }
}
