using LlmPress.Numerics;
using LlmPress.Numerics.Kernels;
using static LlmPress.Tests.Numerics.NumericsTestUtil;

namespace LlmPress.Tests.Numerics;

public class HadamardTransformTests
{
    public static TheoryData<int, int> Lengths()
    {
        var data = new TheoryData<int, int>();
        foreach (var level in Levels())
            foreach (int p in new[] { 0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 13, 16 })
                data.Add((int)level, p);
        return data;
    }

    /// <summary>Same butterflies in the same order, so the SIMD paths must match the reference bit for bit.</summary>
    [Theory]
    [MemberData(nameof(Lengths))]
    public void MatchesReferenceExactly(int level, int log2)
    {
        int n = 1 << log2;
        int rows = log2 >= 14 ? 2 : 3;
        var rng = new Random(log2);
        foreach (bool normalize in new[] { false, true })
        {
            var x = Random(rng, (long)rows * n);
            var expected = (float[])x.Clone();
            HadamardTransformReference.Transform(expected, n, normalize);
            using (Force((KernelLevel)level))
                HadamardTransform.Transform(x, n, normalize);
            for (int i = 0; i < x.Length; i++)
                Assert.Equal(BitConverter.SingleToInt32Bits(expected[i]), BitConverter.SingleToInt32Bits(x[i]));
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(16)]
    [InlineData(64)]
    [InlineData(256)]
    public void MatchesSylvesterMatrixAndSquaresToNTimesIdentity(int n)
    {
        // Sylvester: H[i, j] = (−1)^popcount(i & j). Transforming the identity's rows gives H (symmetric).
        var identity = new float[n * n];
        for (int i = 0; i < n; i++) identity[i * n + i] = 1;
        var h = (float[])identity.Clone();
        HadamardTransform.Transform(h, n, normalize: false);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                Assert.Equal(System.Numerics.BitOperations.PopCount((uint)(i & j)) % 2 == 0 ? 1f : -1f, h[i * n + j]);
        // H·H = n·I: transform the rows of H again.
        HadamardTransform.Transform(h, n, normalize: false);
        for (int i = 0; i < n * n; i++) Assert.Equal(identity[i] * n, h[i]);
    }

    [Theory]
    [InlineData(16)]
    [InlineData(512)]
    [InlineData(65536)]
    public void NormalizedPreservesNormsAndIsItsOwnInverse(int n)
    {
        var rng = new Random(n);
        var x = Random(rng, 2L * n);
        var y = (float[])x.Clone();
        HadamardTransform.Transform(y, n, normalize: true);
        for (int r = 0; r < 2; r++)
        {
            double nx = 0, ny = 0;
            for (int i = 0; i < n; i++)
            {
                nx += (double)x[r * n + i] * x[r * n + i];
                ny += (double)y[r * n + i] * y[r * n + i];
            }
            Assert.True(Math.Abs(nx - ny) <= 1e-5 * nx, $"row {r}: {nx} vs {ny}");
        }
        HadamardTransform.Transform(y, n, normalize: true);
        double log2 = Math.Log2(n);
        for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(x[i] - y[i]) <= 4 * log2 * Eps, $"{i}: {x[i]} vs {y[i]}");
    }

    [Fact]
    public void BlockDiagonalTransformsEachBlock()
    {
        const int rowLength = 96, block = 32;
        var rng = new Random(9);
        var x = Random(rng, 4 * rowLength);
        var expected = (float[])x.Clone();
        for (int start = 0; start < expected.Length; start += block)
            HadamardTransformReference.Transform(expected.AsSpan(start, block), block, normalize: true);
        HadamardTransform.TransformBlockDiagonal(x, rowLength, block, normalize: true);
        Assert.Equal(expected, x);
        Assert.Throws<ArgumentException>(() => HadamardTransform.TransformBlockDiagonal(x, rowLength, 64, true));
        Assert.Throws<ArgumentOutOfRangeException>(() => HadamardTransform.Transform(x, 96, true));
        Assert.Throws<ArgumentException>(() => HadamardTransform.Transform(x.AsSpan(0, 40), 32, true));
    }
}
