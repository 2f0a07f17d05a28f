using LlmPress.Numerics;

namespace LlmPress.Tests.Numerics;

/// <summary>SwiGlu against silu(g)·u in double.</summary>
public class SwiGluTests
{
    /// <summary>
    /// |fast − exact| ≤ 8·2⁻²⁴·|exact| + |g·u|·5·10⁻³⁹: the exp's ~2 ulp shrink by e^−g/(1 + e^−g) ≤ 1 in the quotient, and
    /// the product, the sum and the division round once each; the absolute term covers g ≪ 0, where e^−g is clamped
    /// at e^88.4 and the result comes out as |g·u|·e^−88.4 (≤ |g·u|·4.3·10⁻³⁹) instead of the tinier |g·u|·e^g.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(17)]
    [InlineData(1000)]
    public void MatchesDoubleDefinition(int length)
    {
        var rng = new Random(length);
        var gate = new float[length];
        var up = new float[length];
        for (int i = 0; i < length; i++)
        {
            gate[i] = (float)(rng.NextDouble() * 40 - 20) * (i % 7 == 0 ? 6 : 1); // up to ±120: both clamps
            up[i] = (float)(rng.NextDouble() * 4 - 2);
        }
        var actual = (float[])gate.Clone();
        SwiGlu.Apply(actual, up);
        for (int i = 0; i < length; i++)
        {
            double g = gate[i], exact = g / (1 + Math.Exp(-g)) * up[i];
            Assert.True(Math.Abs(actual[i] - exact) <= 8 * Math.Pow(2, -24) * Math.Abs(exact) + Math.Abs(g * up[i]) * 5e-39,
                $"[{i}] g={g}, u={up[i]}: {actual[i]} vs {exact}");
        }
    }

    [Fact]
    public void RejectsShortUp() => Assert.Throws<ArgumentException>(() => SwiGlu.Apply(new float[4], new float[3]));
}
