using LlmPress.Numerics;

namespace LlmPress.Tests.Numerics;

/// <summary>FastExp against double-precision Math.Exp.</summary>
public class FastExpTests
{
    /// <summary>
    /// Per element: |fast − exp(s)| ≤ 4·2⁻²⁴·exp(s) for s = fl(x − shift) (the Cody–Waite reduction is exact to
    /// ~2⁻³² relative, the polynomial's truncation is 5·10⁻⁹, and the Horner steps and the final product round ~1 ulp
    /// each), or the result is flushed to 0 below e^−87.3 where exp &lt; 1.2·10⁻³⁸.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(15)]
    [InlineData(16)]
    [InlineData(33)]
    [InlineData(1000)]
    public void MatchesMathExpAndSums(int length)
    {
        var rng = new Random(length);
        var x = new float[length];
        for (int i = 0; i < length; i++) x[i] = (float)(rng.NextDouble() * 100 - 95); // spans underflow .. +5
        const float shift = 2.5f;
        var y = (float[])x.Clone();
        float sum = FastExp.ExponentiateShiftedSum(y, shift);
        double expectedSum = 0;
        for (int i = 0; i < length; i++)
        {
            // x − shift is rounded to FP32 first, as the kernel (and TensorPrimitives.Subtract before it) does: that
            // rounding alone moves exp by up to |x − shift|·2⁻²⁴ relative, which is the caller's, not the exp's.
            float shifted = x[i] - shift;
            double expected = Math.Exp(shifted);
            expectedSum += expected;
            if (shifted < -87.33f)
                Assert.True(y[i] == 0 || Math.Abs(y[i] - expected) <= 1e-38, $"[{i}] x={x[i]}: {y[i]} vs {expected}");
            else
                Assert.True(Math.Abs(y[i] - expected) <= 4 * Math.Pow(2, -24) * expected, $"[{i}] x={x[i]}: {y[i]} vs {expected}");
            Assert.Equal(BitConverter.SingleToInt32Bits(FastExp.Exp(x[i] - shift)), BitConverter.SingleToInt32Bits(y[i]));
        }
        // The FP32 sum of ≤ 1000 positive terms: relative error ≤ (n + 4)·2⁻²⁴.
        Assert.True(Math.Abs(sum - expectedSum) <= (length + 4) * Math.Pow(2, -24) * expectedSum, $"sum {sum} vs {expectedSum}");
    }

    [Fact]
    public void HandlesSpecialValues()
    {
        float[] x = [0f, -0f, float.NegativeInfinity, -1000f, float.NaN, 88f];
        FastExp.ExponentiateShiftedSum(x, 0f);
        Assert.Equal(1f, x[0]);
        Assert.Equal(1f, x[1]);
        Assert.Equal(0f, x[2]);
        Assert.Equal(0f, x[3]);
        Assert.True(float.IsNaN(x[4]));
        Assert.True(Math.Abs(x[5] - Math.Exp(88)) <= 4 * Math.Pow(2, -24) * Math.Exp(88));
    }
}
