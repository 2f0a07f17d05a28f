using LlmPress.Tokenization;

namespace LlmPress.Tests.Tokenization;

public class UnicodeNormalizationTests
{
    [Theory]
    [InlineData("cafe\u0301", "café")]
    [InlineData("A\u030A", "\u00C5")]                        // Å
    [InlineData("\u212B", "\u00C5")]                          // Angstrom sign is a singleton decomposition
    [InlineData("\u1100\u1161\u11A8", "\uAC01")]              // Hangul jamo compose algorithmically
    [InlineData("q\u0307\u0323", "q\u0323\u0307")]            // nothing composes, marks are only reordered
    [InlineData("e\u0323\u0302", "\u1EC7")]                   // ệ composes through ẹ
    [InlineData("e\u0302\u0323", "\u1EC7")]                   // marks reordered by combining class first
    [InlineData("\u0958", "\u0915\u093C")]                    // composition exclusion stays decomposed
    [InlineData("Ω\u0301 ά", "\u038F \u03AC")]
    public void ComposesToNfc(string input, string expected) => Assert.Equal(expected, UnicodeNormalization.ToNfc(input));

    [Theory]
    [InlineData("café", "cafe\u0301")]
    [InlineData("\uAC01", "\u1100\u1161\u11A8")]
    [InlineData("\u1EC7", "e\u0323\u0302")]
    public void DecomposesToNfd(string input, string expected) => Assert.Equal(expected, UnicodeNormalization.ToNfd(input));

    [Fact]
    public void TextThatIsAlreadyNormalizedIsReturnedAsIs()
    {
        const string text = "Plain ASCII, Ünïcödé, 日本語, 한국어 and 😀";
        Assert.Same(text, UnicodeNormalization.ToNfc(text));
    }

    [Fact]
    public void OnlyTheSpansAroundMarksAreRewritten()
    {
        string prefix = string.Concat(Enumerable.Repeat("abc ", 100));
        Assert.Equal(prefix + "café " + prefix + "Å", UnicodeNormalization.ToNfc(prefix + "cafe\u0301 " + prefix + "A\u030A"));
        Assert.Equal("e\u0301" + prefix, UnicodeNormalization.ToNfd("é" + prefix));
        // Marks that are already in NFC (Devanagari virama, a stacked mark) leave the text untouched.
        string nfc = prefix + "क्ष x\u0358 " + prefix;
        Assert.Same(nfc, UnicodeNormalization.ToNfc(nfc));
    }

    [Fact]
    public void QwenNormalizesDecomposedInput()
    {
        // string.Normalize is a no-op under InvariantGlobalization; the tokenizer must not depend on it.
        Tokenizer qwen = TestTokenizers.Get("qwen3");
        Assert.Equal(qwen.Encode("naïve café"), qwen.Encode("nai\u0308ve cafe\u0301"));
    }
}
