using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace LlmPress.Numerics;

/// <summary>Matrix products. (Interim simple implementation; the blocked SIMD kernels replace the bodies.)</summary>
public static class Gemm
{
    /// <summary>c[m, n] = a[m, k] · w[n, k]ᵀ (+ c when <paramref name="accumulate"/>). w is converted to FP32 on the fly.</summary>
    public static void MultiplyByWeight(ReadOnlySpan<float> a, int m, WeightView w, Span<float> c, bool accumulate = false)
    {
        int k = w.Cols, n = w.Rows;
        if (a.Length < (long)m * k) throw new ArgumentException("a is shorter than m·k.", nameof(a));
        if (c.Length < (long)m * n) throw new ArgumentException("c is shorter than m·n.", nameof(c));
        var aArr = a[..(m * k)].ToArray();
        var cArr = new float[m * n];
        if (accumulate) c[..(m * n)].CopyTo(cArr);
        Parallel.For(0, n, Parallelism.Options, () => new float[k], (j, _, row) =>
        {
            w.ReadRow(j, row);
            for (int i = 0; i < m; i++)
                cArr[i * n + j] += TensorPrimitives.Dot(aArr.AsSpan(i * k, k), row);
            return row;
        }, _ => { });
        cArr.CopyTo(c);
    }

    /// <summary>c[m, n] = alpha · op(a) · op(b) + beta · c, row-major with leading dimensions; op(x) = xᵀ when the flag is set.</summary>
    public static void Sgemm(bool transposeA, bool transposeB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc, bool parallel = true)
    {
        GemmReference.Sgemm(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
}
