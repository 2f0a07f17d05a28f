using LlmPress.Numerics.Kernels;

namespace LlmPress.Tests.Numerics;

/// <summary>The unpacked (strided) AVX-512 6×64 tile against a double reference.</summary>
public unsafe class StridedKernelTests
{
    /// <summary>
    /// Row-major and transposed A, beta 0 and 1. Tolerance as in GemmTests: (kc + 2)·ε·(|α|·Σ|a||b| + |β·c|), the
    /// FP32 rounding bound of a kc-term sum plus the store's fma.
    /// </summary>
    [Theory]
    [InlineData(64, false, 0f)]
    [InlineData(1, true, 0f)]
    [InlineData(257, false, 1f)]
    [InlineData(100, true, 1f)]
    public void MatchesReference(int kc, bool transposedA, float beta)
    {
        if (KernelDispatch.Best != KernelLevel.Avx512) Assert.Skip("needs AVX-512");
        var rng = new Random(kc);
        float[] Rand(int n) { var x = new float[n]; for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1); return x; }
        const int ldb = 70, ldc = 67;
        nint lda = transposedA ? 9 : kc + 3;
        var a = Rand(transposedA ? kc * 9 : (int)(6 * lda));   // A(i, p) at i·ai + p·ap
        nint ai = transposedA ? 1 : lda, ap = transposedA ? lda : 1;
        var b = Rand(kc * ldb);
        var c0 = Rand(6 * ldc);
        var c = (float[])c0.Clone();
        const float alpha = 0.75f;
        fixed (float* pa = a, pb = b, pc = c)
            MicroKernels.Avx512Kernel6x64Strided(kc, pa, ai, ap, pb, ldb, pc, ldc, alpha, beta);
        for (int i = 0; i < 6; i++)
        for (int j = 0; j < ldc; j++)
        {
            if (j >= 64)
            {
                Assert.Equal(c0[i * ldc + j], c[i * ldc + j]); // outside the tile: untouched
                continue;
            }
            double sum = 0, abs = 0;
            for (int p = 0; p < kc; p++)
            {
                double term = (double)a[i * ai + p * ap] * b[p * ldb + j];
                sum += term;
                abs += Math.Abs(term);
            }
            double expected = alpha * sum + beta * c0[i * ldc + j];
            double bound = (kc + 2) * Math.Pow(2, -24) * (alpha * abs + Math.Abs(beta * c0[i * ldc + j]));
            Assert.True(Math.Abs(c[i * ldc + j] - expected) <= bound, $"({i}, {j}): {c[i * ldc + j]} vs {expected}");
        }
    }
}
