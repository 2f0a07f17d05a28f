using LlmPress.Models;
using LlmPress.Tests.Numerics;

namespace LlmPress.Tests.Models;

/// <summary>
/// RmsNorm and RoPE split prefill-sized inputs (≥ 256 tokens) over threads; each token is still computed whole by
/// one thread, so the result must be bit-identical to running the tokens in small serial pieces, for any thread cap.
/// </summary>
[Collection(GlobalSettingsCollection.Name)]
public class RowParallelStagesTests
{
    private static float[] Random(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
        return x;
    }

    private static void AssertBitEqual(float[] expected, float[] actual)
    {
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]), $"[{i}] {expected[i]:R} vs {actual[i]:R}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void RmsNormMatchesSerialPieces(int threads)
    {
        const int tokens = 700, d = 48;
        var norm = new RmsNorm(Random(d, 1), 1e-5);
        var x = Random(tokens * d, 2);
        var expected = new float[x.Length];
        for (int t0 = 0; t0 < tokens; t0 += 100) // < 256 tokens per call: the serial path
            norm.Forward(x.AsSpan(t0 * d, 100 * d), 100, expected.AsSpan(t0 * d, 100 * d));
        var actual = new float[x.Length];
        using (NumericsTestUtil.Threads(threads)) norm.Forward(x, tokens, actual);
        AssertBitEqual(expected, actual);
        using (NumericsTestUtil.Threads(threads)) norm.Forward(x, tokens, x); // in place
        AssertBitEqual(expected, x);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void RopeMatchesSerialPieces(int threads)
    {
        const int tokens = 600, heads = 3, headDim = 16, start = 37;
        var rope = new RotaryEmbedding(headDim, 10000, RopeScaling.NoScaling);
        var expected = Random(tokens * heads * headDim, 3);
        var actual = (float[])expected.Clone();
        for (int t0 = 0; t0 < tokens; t0 += 100)
            rope.Apply(expected.AsSpan(t0 * heads * headDim, 100 * heads * headDim), 100, heads, start + t0);
        using (NumericsTestUtil.Threads(threads)) rope.Apply(actual, tokens, heads, start);
        AssertBitEqual(expected, actual);
    }
}
