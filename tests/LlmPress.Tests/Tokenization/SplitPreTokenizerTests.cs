using LlmPress.Tokenization;

namespace LlmPress.Tests.Tokenization;

public class SplitPreTokenizerTests
{
    private static List<string> Split(PreTokenizer preTokenizer, string text)
    {
        var pieces = new List<TextPiece> { new(0, text.Length) };
        string result = preTokenizer.Split(text, pieces);
        return pieces.Select(p => result.Substring(p.Start, p.Length)).ToList();
    }

    // tokenizers' own split tests: pattern \w+|[^\w\s]+ inverted, so the delimiters are the spaces.
    [Theory]
    [InlineData("Removed", new[] { "How", "are", "you", "doing", "?" })]
    [InlineData("Isolated", new[] { "How", " ", "are", " ", "you", " ", "doing", "?" })]
    [InlineData("MergedWithPrevious", new[] { "How ", "are ", "you ", "doing", "?" })]
    [InlineData("MergedWithNext", new[] { "How", " are", " you", " doing", "?" })]
    [InlineData("Contiguous", new[] { "How", " ", "are", " ", "you", " ", "doing?" })]
    public void BehaviorsMatchTokenizers(string behavior, string[] expected)
    {
        var split = new SplitPreTokenizer(new RegexSplitMatcher(@"\w+|[^\w\s]+"), Enum.Parse<SplitBehavior>(behavior), invert: true);
        Assert.Equal(expected, Split(split, "How are you doing?"));
    }

    [Fact]
    public void LiteralPatternSplits()
    {
        var split = new SplitPreTokenizer(new LiteralSplitMatcher("--"), SplitBehavior.Removed, invert: false);
        Assert.Equal(["a", "b", "c-"], Split(split, "a--b----c-"));
    }

    [Fact]
    public void DigitsAreIsolatedOrGrouped()
    {
        Assert.Equal(["x", "1", "2", "3", " y", "²"], Split(new DigitsPreTokenizer(individualDigits: true), "x123 y²"));
        Assert.Equal(["x", "123", " y", "²"], Split(new DigitsPreTokenizer(individualDigits: false), "x123 y²"));
    }

    [Fact]
    public void ByteLevelAddsPrefixSpaceAndSplitsLikeGpt2()
    {
        var byteLevel = new ByteLevelPreTokenizer(addPrefixSpace: true, useRegex: true);
        Assert.Equal([" Hello", " my", " friend", ",", " how", "'s", "   ", " it"], Split(byteLevel, "Hello my friend, how's    it"));
        var noPrefix = new ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: false);
        Assert.Equal(["Hello there"], Split(noPrefix, "Hello there"));
    }
}
