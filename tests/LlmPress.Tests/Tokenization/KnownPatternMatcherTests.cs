using System.Text;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Tokenization;

public class KnownPatternMatcherTests
{
    public static TheoryData<string> Patterns =>
        [ByteLevelPreTokenizer.Gpt2Pattern, KnownPatternMatcher.Llama3Pattern, KnownPatternMatcher.QwenPattern];

    private static List<string> Split(SplitMatcher matcher, string text)
    {
        var matches = new List<TextPiece>();
        matcher.FindMatches(text, matches);
        return matches.Select(m => text.Substring(m.Start, m.Length)).ToList();
    }

    [Theory]
    [MemberData(nameof(Patterns))]
    public void AgreesWithDotNetRegexOnBmpText(string pattern)
    {
        SplitMatcher scanner = KnownPatternMatcher.Create(pattern)!;
        var regex = new RegexSplitMatcher(pattern);
        // Every class the patterns distinguish: letters (Latin, Cyrillic, CJK, Hangul, modifier letters), numbers
        // (ASCII, superscripts, fractions, roman numerals), marks, spaces (ASCII, NBSP, ideographic, line
        // separator), \r \n \t, apostrophes for contractions (either case), punctuation and symbols.
        const string alphabet = "aZsStTmMdDrReEvVlLxé ʰЖ日한ᄀ0971²½Ⅻ\u0301\u093C  \u00A0\u3000\u2028\u0085\r\n\t\v''''.,!?-_#()“”—…€∑";
        var rng = new Random(20260521);
        var sb = new StringBuilder();
        for (int trial = 0; trial < 20000; trial++)
        {
            sb.Clear();
            int length = rng.Next(1, 24);
            for (int i = 0; i < length; i++) sb.Append(alphabet[rng.Next(alphabet.Length)]);
            string text = sb.ToString();
            Assert.Equal(Split(regex, text), Split(scanner, text));
        }
    }

    [Theory]
    [MemberData(nameof(Patterns))]
    public void AgreesWithDotNetRegexOnWikiText(string pattern)
    {
        string text = File.ReadAllText(SharedData.Require("data", "wikitext-2-raw", "wiki.test.raw"));
        Assert.Equal(Split(new RegexSplitMatcher(pattern), text), Split(KnownPatternMatcher.Create(pattern)!, text));
    }

    [Fact]
    public void LettersAndDigitsOutsideTheBmpCountAsOneCodePoint()
    {
        // .NET Regex sees surrogate pairs, Oniguruma (used by Hugging Face) sees code points: 𝐱 (U+1D431) is a
        // letter and 𝟏 (U+1D7CF) a decimal digit.
        SplitMatcher llama = KnownPatternMatcher.Create(KnownPatternMatcher.Llama3Pattern)!;
        Assert.Equal(["a𝐱b", " 𠀀字"], Split(llama, "a𝐱b 𠀀字"));
        Assert.Equal(["𝟏𝟐𝟑", "𝟒"], Split(llama, "𝟏𝟐𝟑𝟒"));
        SplitMatcher gpt2 = KnownPatternMatcher.Create(ByteLevelPreTokenizer.Gpt2Pattern)!;
        Assert.Equal(["x", " 𝐱𝐲", " 😀"], Split(gpt2, "x 𝐱𝐲 😀"));
    }

    [Fact]
    public void OtherPatternsAreNotClaimed() => Assert.Null(KnownPatternMatcher.Create(@"\s+"));
}
