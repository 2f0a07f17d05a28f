using LlmPress.Numerics;
using LlmPress.Quantization;

namespace LlmPress.Tests.Quantization.Gptq;

public class HessianAccumulatorTests
{
    private static double[] ReferenceHessian(float[] x, int tokens, int cols)
    {
        var h = new double[cols * cols];
        for (int t = 0; t < tokens; t++)
            for (int i = 0; i < cols; i++)
            {
                double xi = x[t * cols + i];
                for (int j = 0; j < cols; j++) h[i * cols + j] += xi * x[t * cols + j];
            }
        for (int i = 0; i < h.Length; i++) h[i] *= 2.0 / tokens;
        return h;
    }

    private static void AssertClose(double[] expected, float[] actual, double relative)
    {
        double scale = expected.Max(Math.Abs);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= relative * scale, $"element {i}: expected {expected[i]:R}, got {actual[i]:R}");
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(37, 5)]
    [InlineData(1000, 33)]
    [InlineData(5000, 70)] // past FoldTokens: more than one FP32 partial sum
    public void MatchesDoublePrecisionReference(int tokens, int cols)
    {
        var x = GptqTestData.CorrelatedInputs(tokens, cols, seed: tokens + cols, rank: Math.Min(4, cols));
        var acc = new HessianAccumulator(cols);
        acc.Add(x, tokens);
        Assert.Equal(tokens, acc.TokenCount);
        var h = acc.GetHessian();
        // FP32 products summed in FP32 over ≤ 4096 tokens: ~1e-6 relative to the largest entry.
        AssertClose(ReferenceHessian(x, tokens, cols), h, 1e-5);
        for (int i = 0; i < cols; i++)
            for (int j = 0; j < i; j++) Assert.Equal(h[i * cols + j], h[j * cols + i]);
    }

    [Fact]
    public void BatchSplitDoesNotMatter()
    {
        int tokens = 1500, cols = 24;
        var x = GptqTestData.CorrelatedInputs(tokens, cols, seed: 4);
        var whole = new HessianAccumulator(cols);
        whole.Add(x, tokens);
        var expected = ReferenceHessian(x, tokens, cols);
        AssertClose(expected, whole.GetHessian(), 1e-5);
        foreach (int[] split in new[] { new[] { 1, 1, 1, 1497 }, Enumerable.Repeat(1, tokens).ToArray(), new[] { 255, 256, 257, 700, 32 }, new[] { 0, 1500, 0 } })
        {
            var acc = new HessianAccumulator(cols);
            int t = 0;
            foreach (int b in split)
            {
                acc.Add(x.AsSpan(t * cols, b * cols), b);
                t += b;
            }
            Assert.Equal(tokens, acc.TokenCount);
            AssertClose(expected, acc.GetHessian(), 1e-5);
        }
    }

    [Fact]
    public void ManyTokensKeepFullPrecision()
    {
        // 262,144 tokens with a large common offset (every product positive: the worst case for a long FP32 sum).
        // Each ≤ 4096-token slice is summed in FP32, slices in double: error stays ~1e-6 of the value.
        int cols = 4, batch = 2048, batches = 128;
        var rng = new Random(6);
        var acc = new HessianAccumulator(cols);
        var exact = new double[cols * cols];
        var x = new float[batch * cols];
        for (int b = 0; b < batches; b++)
        {
            for (int i = 0; i < x.Length; i++) x[i] = 3f + (float)rng.NextDouble();
            for (int t = 0; t < batch; t++)
                for (int i = 0; i < cols; i++)
                    for (int j = 0; j < cols; j++) exact[i * cols + j] += (double)x[t * cols + i] * x[t * cols + j];
            acc.Add(x, batch);
        }
        Assert.Equal(batch * batches, acc.TokenCount);
        var h = acc.GetHessian();
        for (int i = 0; i < exact.Length; i++)
        {
            double e = exact[i] * 2.0 / (batch * batches);
            Assert.True(Math.Abs(h[i] - e) <= 2e-6 * e, $"element {i}: {h[i]:R} vs {e:R}");
        }
    }

    [Fact]
    public void ResetAndContinue()
    {
        int cols = 8;
        var x = GptqTestData.CorrelatedInputs(100, cols, seed: 3, rank: 2);
        var acc = new HessianAccumulator(cols);
        acc.Add(x, 100);
        var first = acc.GetHessian();
        acc.Add(x, 100); // same data twice: same average
        AssertClose(first.Select(v => (double)v).ToArray(), acc.GetHessian(), 1e-6);
        acc.Reset();
        Assert.Equal(0, acc.TokenCount);
        Assert.Throws<InvalidOperationException>(() => acc.GetHessian());
        acc.Add(x, 100);
        AssertClose(first.Select(v => (double)v).ToArray(), acc.GetHessian(), 1e-6);
    }

    [Fact]
    public void BadInputThrows()
    {
        var acc = new HessianAccumulator(4);
        Assert.Throws<ArgumentException>(() => acc.Add(new float[7], 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => acc.Add([], -1));
        var x = new float[12];
        x[9] = float.NaN;
        var e = Assert.Throws<ArgumentException>(() => acc.Add(x, 3));
        Assert.Contains("x[2, 1]", e.Message);
        Assert.Equal(0, acc.TokenCount);
        Assert.Throws<ArgumentOutOfRangeException>(() => new HessianAccumulator(0));
        Assert.Throws<ArgumentException>(() => { acc.Add(new float[4], 1); acc.GetHessian(new float[15]); });
    }
}
