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
    public void ComposesToNfc(string input, string expected) => Assert.Equal(expected, new UnicodeNormalizer(compose: true).Normalize(input));

    [Theory]
    [InlineData("café", "cafe\u0301")]
    [InlineData("\uAC01", "\u1100\u1161\u11A8")]
    [InlineData("\u1EC7", "e\u0323\u0302")]
    public void DecomposesToNfd(string input, string expected) => Assert.Equal(expected, new UnicodeNormalizer(compose: false).Normalize(input));

    [Fact]
    public void QwenNormalizesDecomposedInput()
    {
        Tokenizer qwen = TestTokenizers.Get("qwen3");
        Assert.Equal(qwen.Encode("naïve café"), qwen.Encode("nai\u0308ve cafe\u0301"));
    }
}
