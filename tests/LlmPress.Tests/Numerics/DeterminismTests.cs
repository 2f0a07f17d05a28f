using LlmPress.Numerics;
using static LlmPress.Tests.Numerics.NumericsTestUtil;

namespace LlmPress.Tests.Numerics;

/// <summary>Results must be bit-identical for any thread cap (threads split output tiles, never a K sum).</summary>
[Collection(GlobalSettingsCollection.Name)]
public class DeterminismTests
{
    private static float[] Run(int threads, Action<float[]> body, int length)
    {
        var c = new float[length];
        using (Threads(threads)) body(c);
        return c;
    }

    private static void AssertSameForThreadCounts(Action<float[]> body, int length)
    {
        var one = Run(1, body, length);
        foreach (int threads in new[] { 2, 3 })
        {
            var other = Run(threads, body, length);
            for (int i = 0; i < length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(one[i]) == BitConverter.SingleToInt32Bits(other[i]),
                    $"threads {threads}: element {i} differs ({one[i]:R} vs {other[i]:R})");
        }
    }

    [Theory]
    [InlineData(false, false, 300, 500, 700)]
    [InlineData(true, true, 257, 129, 513)]
    [InlineData(false, true, 40, 4100, 64)]
    public void SgemmIsIndependentOfThreadCount(bool ta, bool tb, int m, int n, int k)
    {
        var rng = new Random(5);
        var a = Random(rng, (long)m * k);
        var b = Random(rng, (long)k * n);
        var c0 = Random(rng, (long)m * n);
        AssertSameForThreadCounts(c =>
        {
            c0.CopyTo(c, 0);
            Gemm.Sgemm(ta, tb, m, n, k, 0.5f, a, ta ? m : k, b, tb ? k : n, 1f, c, n);
        }, m * n);
    }

    [Theory]
    [InlineData(DType.BF16, 1, 2000, 300)]
    [InlineData(DType.F16, 5, 1031, 257)]
    [InlineData(DType.F32, 100, 515, 300)]
    public void MultiplyByWeightIsIndependentOfThreadCount(DType type, int m, int n, int k)
    {
        var rng = new Random(6);
        var a = Random(rng, (long)m * k);
        var w = new WeightView(type, n, k, ToBytes(Random(rng, (long)n * k), type));
        AssertSameForThreadCounts(c => Gemm.MultiplyByWeight(a, m, w, c), m * n);
    }

    [Fact]
    public void SymmetricRankUpdateIsIndependentOfThreadCount()
    {
        const int rows = 300, cols = 260;
        var x = Random(new Random(7), (long)rows * cols);
        AssertSameForThreadCounts(h => SymmetricRankUpdate.Accumulate(x, rows, cols, 0.25f, h), cols * cols);
    }

    [Fact]
    public void CholeskyAndUpperFactorOfInverseAreIndependentOfThreadCount()
    {
        const int n = 300;
        var spd = KernelBenchmarkSpd(n);
        AssertSameForThreadCounts(a => { spd.CopyTo(a, 0); Assert.True(Cholesky.TryFactor(a, n, out _)); }, n * n);
        AssertSameForThreadCounts(a => { spd.CopyTo(a, 0); Assert.True(Cholesky.UpperFactorOfInverse(a, n, out _)); }, n * n);
        var l = (float[])spd.Clone();
        Assert.True(Cholesky.TryFactor(l, n, out _));
        AssertSameForThreadCounts(inv => Cholesky.Invert(l, n, inv), n * n);
    }

    [Fact]
    public void HadamardIsIndependentOfThreadCount()
    {
        var x = Random(new Random(8), 1 << 19);
        AssertSameForThreadCounts(y => { x.CopyTo(y, 0); HadamardTransform.Transform(y, 1024, normalize: true); }, x.Length);
    }

    [Fact]
    public void KernelBenchmarkMeasuresAndRestoresTheThreadCap()
    {
        int saved = Parallelism.MaxThreads;
        var none = TimeSpan.Zero;
        Assert.True(KernelBenchmark.MeasureSgemmGflops(48, 2, none) > 0);
        Assert.True(KernelBenchmark.MeasureMultiplyByWeightGflops(9, 40, 24, DType.BF16, 1, none) > 0);
        Assert.True(KernelBenchmark.MeasureMultiplyByWeightGBps(1, 40, 24, DType.F16, 2, none) > 0);
        Assert.True(KernelBenchmark.MeasureSymmetricRankUpdateGflops(20, 30, 1, none) > 0);
        Assert.True(KernelBenchmark.MeasureCholeskyGflops(40, 2, none) > 0);
        Assert.True(KernelBenchmark.MeasureUpperFactorOfInverseSeconds(40, 1, none) > 0);
        Assert.True(KernelBenchmark.MeasureHadamardGBps(4, 64, 1, none) > 0);
        Assert.Equal(saved, Parallelism.MaxThreads);
    }

    private static float[] KernelBenchmarkSpd(int n) => KernelBenchmark.RandomSpd(n);
}
