namespace LlmPress.Numerics;

/// <summary>Scalar reference for <see cref="Gemm"/>: the definition the fast kernels are tested against.</summary>
public static class GemmReference
{
    /// <summary>c = alpha · op(a) · op(b) + beta · c, accumulated in double, row-major.</summary>
    public static void Sgemm(bool transposeA, bool transposeB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
        {
            double sum = 0;
            for (int p = 0; p < k; p++)
            {
                float av = transposeA ? a[p * lda + i] : a[i * lda + p];
                float bv = transposeB ? b[j * ldb + p] : b[p * ldb + j];
                sum += (double)av * bv;
            }
            float prior = beta == 0 ? 0 : beta * c[i * ldc + j];
            c[i * ldc + j] = (float)(alpha * sum) + prior;
        }
    }

    /// <summary>c[m, n] = a[m, k] · w[n, k]ᵀ (+ c), w converted to FP32 exactly, accumulated in double.</summary>
    public static void MultiplyByWeight(ReadOnlySpan<float> a, int m, WeightView w, Span<float> c, bool accumulate = false)
    {
        var wf = w.ToFloatArray();
        Sgemm(false, true, m, w.Rows, w.Cols, 1f, a, w.Cols, wf, w.Cols, accumulate ? 1f : 0f, c, w.Rows);
    }
}
