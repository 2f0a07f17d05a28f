using LlmPress.Calibration;
using LlmPress.Tokenization;

namespace LlmPress.Tests.Calibration;

public class CalibrationDataTests
{
    private static readonly int[] s_tokens = [.. Enumerable.Range(0, 1000)];

    [Fact]
    public void SameSeedSameWindows_DifferentSeedDifferentWindows()
    {
        var a = CalibrationData.FromTokens(s_tokens, 8, 50, seed: 7);
        var b = CalibrationData.FromTokens(s_tokens, 8, 50, seed: 7);
        var c = CalibrationData.FromTokens(s_tokens, 8, 50, seed: 8);
        Assert.Equal(a.Samples, b.Samples);
        Assert.NotEqual(a.Samples, c.Samples);
    }

    [Fact]
    public void WindowsAreContiguousSlicesOfTheText()
    {
        var data = CalibrationData.FromTokens(s_tokens, 16, 100, seed: 0);
        Assert.Equal(16, data.SampleCount);
        Assert.Equal(1000, data.TextTokens);
        foreach (var s in data.Samples)
        {
            Assert.Equal(100, s.Length);
            for (int i = 1; i < s.Length; i++) Assert.Equal(s[0] + i, s[i]);
            Assert.InRange(s[0], 0, 900);
        }
    }

    [Fact]
    public void WindowAsLongAsTheTextIsTheWholeText()
    {
        var data = CalibrationData.FromTokens(s_tokens, 2, 1000, seed: 3);
        Assert.All(data.Samples, s => Assert.Equal(s_tokens, s));
    }

    [Fact]
    public void TooShortTextNamesTheSource()
    {
        var e = Assert.Throws<ArgumentException>(() => CalibrationData.FromTokens(s_tokens, 4, 1001, seed: 0, source: "calib.txt"));
        Assert.Contains("calib.txt", e.Message);
        Assert.Contains("1000 tokens", e.Message);
    }

    [Fact]
    public void BadCountsAreRejected()
    {
        Assert.Throws<ArgumentException>(() => CalibrationData.FromTokens(s_tokens, 0, 10, seed: 0));
        Assert.Throws<ArgumentException>(() => CalibrationData.FromTokens(s_tokens, 1, 0, seed: 0));
    }

    [Fact]
    public void FromTextTokenizesOnceWithBos()
    {
        var tokenizer = Tokenizer.Load(SharedData.Require("models", "stories260K", "tokenizer.json"));
        string text = File.ReadAllText(SharedData.Require("data", "tinystories", "tinystories-10k.txt"))[..5000];
        var data = CalibrationData.FromText(tokenizer, text, bosTokenId: 1, sampleCount: 4, sequenceLength: 64, seed: 0, source: "tiny");
        Assert.Equal(tokenizer.Encode(text).Length + 1, data.TextTokens);
        Assert.All(data.Samples, s => Assert.Equal(64, s.Length));
    }
}
