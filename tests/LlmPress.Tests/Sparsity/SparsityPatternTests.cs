using LlmPress.Sparsity;

namespace LlmPress.Tests.Sparsity;

public class SparsityPatternTests
{
    [Theory]
    [InlineData("0.5", 0.5, 0, 0)]
    [InlineData("50%", 0.5, 0, 0)]
    [InlineData(" 0 ", 0.0, 0, 0)]
    [InlineData("0.999", 0.999, 0, 0)]
    [InlineData("2:4", 0.5, 2, 4)]
    [InlineData("4:8", 0.5, 4, 8)]
    [InlineData("1:4", 0.25, 1, 4)]
    public void Parse_ReadsFractionsAndNOfM(string text, double fraction, int n, int m)
    {
        var p = SparsityPattern.Parse(text);
        Assert.Equal(fraction, p.Fraction, 12);
        Assert.Equal(n, p.N);
        Assert.Equal(m, p.M);
        Assert.Equal(m > 0, p.IsNOfM);
        Assert.Equal(p, SparsityPattern.Parse(p.Name)); // the name round-trips
    }

    [Theory]
    [InlineData("1")]
    [InlineData("1.0")]
    [InlineData("-0.1")]
    [InlineData("100%")]
    [InlineData("NaN")]
    [InlineData("4:4")]
    [InlineData("5:4")]
    [InlineData("0:4")]
    [InlineData("2:1")]
    public void Parse_RejectsOutOfRange(string text) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => SparsityPattern.Parse(text));

    [Theory]
    [InlineData("")]
    [InlineData("half")]
    [InlineData("2:")]
    [InlineData("2:4:8")]
    [InlineData("-2:4")]
    public void Parse_RejectsGarbage(string text)
    {
        Assert.Throws<FormatException>(() => SparsityPattern.Parse(text));
        Assert.False(SparsityPattern.TryParse(text, out _));
    }

    [Fact]
    public void ZeroCount_IsExact()
    {
        Assert.Equal(2048, SparsityPattern.Unstructured(0.5).ZeroCount(64, 64));
        Assert.Equal(5504, SparsityPattern.Unstructured(0.5).ZeroCount(64, 172));
        Assert.Equal((long)Math.Round(0.3 * 7 * 13, MidpointRounding.ToEven), SparsityPattern.Unstructured(0.3).ZeroCount(7, 13));
        Assert.Equal(64 * 43 * 2, SparsityPattern.NOfM(2, 4).ZeroCount(64, 172));
        Assert.Equal(0, SparsityPattern.Dense.ZeroCount(10, 10));
    }

    [Fact]
    public void CheckFits_NamesTheLayerWhenMDoesNotDivide()
    {
        SparsityPattern.NOfM(2, 4).CheckFits(172, "l");
        var e = Assert.Throws<ArgumentException>(() => SparsityPattern.NOfM(2, 8).CheckFits(172, "model.layers.0.mlp.down_proj"));
        Assert.Contains("model.layers.0.mlp.down_proj", e.Message);
        Assert.Contains("172", e.Message);
        SparsityPattern.Unstructured(0.5).CheckFits(173);
    }
}
