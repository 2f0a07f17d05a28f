using LlmPress.Numerics;
using LlmPress.Numerics.Kernels;
using static LlmPress.Tests.Numerics.NumericsTestUtil;

namespace LlmPress.Tests.Numerics;

/// <summary>
/// Gemm vs GemmReference (double accumulation). Tolerance: a float FMA chain of length k has error at most
/// ~k·u·Σ|a||b| (u = ε/2), so |c − ref| ≤ (k + 2)·ε·(|α|·(|A|·|B|)ᵢⱼ + |β|·|c₀ᵢⱼ|) covers the K sum, the alpha/beta
/// combination and the final rounding with a 2× margin. Blocked sums sit far below this worst case; a kernel
/// bug (a wrong or missing term) is off by ~|a||b|, i.e. by orders of magnitude more.
/// </summary>
public class GemmTests
{
    private static readonly int[] s_awkward = [0, 1, 7, 15, 16, 17, 63, 65, 127, 257];

    public static TheoryData<int, bool, bool, int, int, int> SgemmCases()
    {
        var data = new TheoryData<int, bool, bool, int, int, int>();
        (int, int, int)[] shapes =
        [
            (1, 1, 1), (7, 7, 7), (15, 15, 15), (16, 16, 16), (17, 17, 17), (63, 63, 63), (65, 65, 65), (127, 127, 127),
            (0, 5, 3), (5, 0, 3), (5, 3, 0), (1, 257, 17), (257, 1, 65), (7, 65, 257), (65, 7, 1), (127, 16, 63),
            (17, 130, 300), (150, 70, 257), (6, 64, 256), (12, 128, 513),
        ];
        foreach (var level in Levels())
            foreach (bool ta in new[] { false, true })
                foreach (bool tb in new[] { false, true })
                    foreach (var (m, n, k) in shapes)
                        data.Add((int)level, ta, tb, m, n, k);
        return data;
    }

    // level: (int)KernelLevel (the enum is internal).
    [Theory]
    [MemberData(nameof(SgemmCases))]
    public void SgemmMatchesReference(int level, bool transposeA, bool transposeB, int m, int n, int k)
    {
        var rng = new Random(HashCode.Combine(m, n, k, transposeA, transposeB));
        // (alpha, beta) cases: plain, scaled, accumulate, beta = 0 over NaN garbage.
        foreach (var (alpha, beta) in new[] { (1f, 0f), (-0.75f, 1f), (2.5f, -0.5f) })
        {
            // Leading dimensions wider than the rows, so strided access is exercised.
            int aRows = transposeA ? k : m, aCols = transposeA ? m : k;
            int bRows = transposeB ? n : k, bCols = transposeB ? k : n;
            int lda = aCols + 3, ldb = bCols + 5, ldc = n + 2;
            var a = Random(rng, Math.Max(0, (long)aRows * lda));
            var b = Random(rng, Math.Max(0, (long)bRows * ldb));
            var c0 = Random(rng, (long)m * ldc);
            if (beta == 0) Array.Fill(c0, float.NaN);
            var expected = (float[])c0.Clone();
            GemmReference.Sgemm(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, expected, ldc);
            var bound = new float[c0.Length];
            var absC = beta == 0 ? new float[c0.Length] : Abs(c0);
            GemmReference.Sgemm(transposeA, transposeB, m, n, k, Math.Abs(alpha), Abs(a), lda, Abs(b), ldb, 0f, bound, ldc);
            for (int i = 0; i < bound.Length; i++) bound[i] += Math.Abs(beta) * absC[i];

            var actual = (float[])c0.Clone();
            using (Force((KernelLevel)level))
                Gemm.Sgemm(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, actual, ldc);

            // Only the [m, n] window is defined; the ldc padding must stay untouched.
            for (int i = 0; i < m; i++)
                for (int j = n; j < ldc; j++)
                    Assert.Equal(BitConverter.SingleToInt32Bits(c0[i * ldc + j]), BitConverter.SingleToInt32Bits(actual[i * ldc + j]));
            for (int i = 0; i < m; i++)
                for (int j = n; j < ldc; j++)
                    expected[i * ldc + j] = actual[i * ldc + j] = 0;
            AssertClose(expected, actual, bound, (k + 2) * Eps, $"alpha {alpha} beta {beta}");
        }
    }

    public static TheoryData<int, DType, int, int, int, bool> WeightCases()
    {
        var data = new TheoryData<int, DType, int, int, int, bool>();
        (int, int, int)[] shapes =
        [
            (1, 1, 1), (1, 17, 65), (1, 257, 16), (2, 63, 127), (3, 5, 257), (4, 16, 17), (5, 7, 33), (7, 65, 63),
            (8, 17, 65), (9, 64, 256), (17, 257, 15), (65, 127, 300), (0, 4, 4), (3, 0, 4), (2, 4, 0), (13, 5, 0),
            // GEMM path (m past the GEMV limits: m > 32, or m·k > 128 Ki) with and without partial 16-row pack groups.
            (33, 65, 17), (20, 33, 7000), (40, 128, 48),
        ];
        foreach (var level in Levels())
            foreach (var type in new[] { DType.F32, DType.F16, DType.BF16 })
                foreach (var (m, n, k) in shapes)
                    data.Add((int)level, type, m, n, k, m % 2 == 1);
        return data;
    }

    [Theory]
    [MemberData(nameof(WeightCases))]
    public void MultiplyByWeightMatchesReference(int level, DType type, int m, int n, int k, bool accumulate)
    {
        var rng = new Random(HashCode.Combine(m, n, k, (int)type));
        var a = Random(rng, (long)m * k);
        var wf = Random(rng, (long)n * k);
        var w = new WeightView(type, n, k, ToBytes(wf, type));
        var c0 = Random(rng, (long)m * n);
        if (!accumulate) Array.Fill(c0, float.NaN);

        var expected = (float[])c0.Clone();
        GemmReference.MultiplyByWeight(a, m, w, expected, accumulate);
        // The reference widens the weight exactly, so the bound only covers the K sum (as in Sgemm).
        var bound = new float[m * n];
        var absW = new WeightView(DType.F32, n, k, ToBytes(Abs(w.ToFloatArray()), DType.F32));
        GemmReference.MultiplyByWeight(Abs(a), m, absW, bound);
        if (accumulate)
            for (int i = 0; i < bound.Length; i++) bound[i] += Math.Abs(c0[i]);

        var actual = (float[])c0.Clone();
        using (Force((KernelLevel)level))
            Gemm.MultiplyByWeight(a, m, w, actual, accumulate);
        AssertClose(expected, actual, bound, (k + 2) * Eps, $"{type}");
    }

    [Fact]
    public void F16WideningHandlesSubnormalsInfinitiesAndNaN()
    {
        // Every half bit pattern through the fused F16 loader (via a 1×1 weight GEMV with a = 1) vs (float)Half.
        const int k = 65536;
        var bits = new byte[k * 2];
        for (int i = 0; i < k; i++) BitConverter.TryWriteBytes(bits.AsSpan(i * 2), (ushort)i);
        var row = new float[k];
        for (int i = 0; i < k; i++) row[i] = (float)BitConverter.UInt16BitsToHalf((ushort)i);
        // One weight row per element, so each output is one product a·w = w.
        var w = new WeightView(DType.F16, k, 1, bits);
        var c = new float[k];
        Gemm.MultiplyByWeight([1f], 1, w, c);
        for (int i = 0; i < k; i++)
        {
            if (float.IsNaN(row[i])) Assert.True(float.IsNaN(c[i]), $"pattern {i:X4}");
            else Assert.Equal(row[i], c[i]);
        }
        // And through the 16-wide vector loader: k = 16 per row.
        var w16 = new WeightView(DType.F16, k / 16, 16, bits);
        var c16 = new float[k / 16];
        var ones = new float[16];
        for (int p = 0; p < 16; p++)
        {
            Array.Clear(ones);
            ones[p] = 1f;
            Gemm.MultiplyByWeight(ones, 1, w16, c16);
            for (int j = 0; j < k / 16; j++)
            {
                float expected = row[j * 16 + p];
                // Other lanes contribute w·0, which is NaN for Inf/NaN weights; only check rows free of those.
                bool rowFinite = true;
                for (int q = 0; q < 16; q++) rowFinite &= float.IsFinite(row[j * 16 + q]);
                if (rowFinite) Assert.Equal(expected, c16[j]);
            }
        }
    }

    [Fact]
    public void SgemmValidatesShapes()
    {
        var x = new float[16];
        Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, false, 4, 4, 4, 1f, x, 4, x.AsSpan(0, 15).ToArray(), 4, 0f, new float[16], 4));
        Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, false, 4, 4, 4, 1f, x, 3, x, 4, 0f, new float[16], 4));
        Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, false, 4, 4, 4, 1f, x, 4, x, 4, 0f, x, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Sgemm(false, false, -1, 4, 4, 1f, x, 4, x, 4, 0f, new float[16], 4));
    }
}
