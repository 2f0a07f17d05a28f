using LlmPress.Numerics.Kernels;

namespace LlmPress.Numerics;

/// <summary>
/// FP32 matrix products on the CPU: a blocked, packed GEMM (AVX-512 6×64 register tile; AVX2 6×16 and scalar
/// fallbacks) and a weight product that widens F16/BF16 weights while packing (prefill) or streaming (decode).
/// Results are bit-identical for any <see cref="Parallelism.MaxThreads"/>: threads split output tiles only and
/// every K sum runs in one fixed order. They may differ in the last bits between instruction-set tiers, and
/// between the GEMV (m &lt; <see cref="GemvMaxRows"/> + 1) and GEMM paths of <see cref="MultiplyByWeight"/>.
/// </summary>
public static unsafe class Gemm
{
    /// <summary>Largest m that <see cref="MultiplyByWeight"/> serves with the streaming GEMV instead of the GEMM.</summary>
    public const int GemvMaxRows = 7;

    /// <summary>
    /// c[m, n] = alpha · op(a) · op(b) + beta · c, row-major with leading dimensions; op(x) = xᵀ when the flag is set.
    /// Shapes: op(a) is [m, k] (a stored [m, lda] or, transposed, [k, lda]); op(b) is [k, n] (b stored [k, ldb] or,
    /// transposed, [n, ldb]); c is [m, ldc]. beta = 0 ignores c's prior contents (NaN-safe).
    /// <paramref name="parallel"/> = false runs on the caller's thread (for use inside already-parallel loops).
    /// </summary>
    /// <exception cref="ArgumentException">A span is too short for its shape, a leading dimension is smaller than
    /// its row width, or c overlaps a or b.</exception>
    public static void Sgemm(bool transposeA, bool transposeB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc, bool parallel = true)
    {
        if (m < 0) ThrowHelper.ThrowArgumentOutOfRange(nameof(m), m, "m must be non-negative.");
        if (n < 0) ThrowHelper.ThrowArgumentOutOfRange(nameof(n), n, "n must be non-negative.");
        if (k < 0) ThrowHelper.ThrowArgumentOutOfRange(nameof(k), k, "k must be non-negative.");
        if (m == 0 || n == 0) return;
        if (transposeA) ThrowHelper.CheckMatrix(a.Length, k, m, lda, nameof(a));
        else ThrowHelper.CheckMatrix(a.Length, m, k, lda, nameof(a));
        if (transposeB) ThrowHelper.CheckMatrix(b.Length, n, k, ldb, nameof(b));
        else ThrowHelper.CheckMatrix(b.Length, k, n, ldb, nameof(b));
        ThrowHelper.CheckMatrix(c.Length, m, n, ldc, nameof(c));
        if (k > 0 && (c.Overlaps(a) || c.Overlaps(b))) ThrowHelper.ThrowArgument("c must not overlap a or b.", nameof(c));

        fixed (float* pa = a, pb = b, pc = c)
        {
            GemmDriver.Run(m, n, k, alpha, MatrixSource.ForA(pa, lda, transposeA), MatrixSource.ForB(pb, ldb, transposeB),
                beta, pc, ldc, parallel);
        }
    }

    /// <summary>
    /// c[m, n] = a[m, k] · w[n, k]ᵀ (+ c when <paramref name="accumulate"/>), with k = w.Cols and n = w.Rows (the
    /// Hugging Face [out, in] layout). F16/BF16 weights are widened to FP32 while packing (m &gt; 7) or while
    /// streaming (m ≤ 7, memory-bound GEMV); the whole matrix is never expanded. Runs on up to
    /// <see cref="Parallelism.MaxThreads"/> threads unless <paramref name="parallel"/> is false.
    /// </summary>
    /// <exception cref="ArgumentException">a or c is too short, or c overlaps a.</exception>
    public static void MultiplyByWeight(ReadOnlySpan<float> a, int m, WeightView w, Span<float> c, bool accumulate = false, bool parallel = true)
    {
        int k = w.Cols, n = w.Rows;
        if (m < 0) ThrowHelper.ThrowArgumentOutOfRange(nameof(m), m, "m must be non-negative.");
        if (!DTypeInfo.IsWeightFloat(w.Type)) ThrowHelper.ThrowUnsupportedWeightType(w.Type);
        if (a.Length < (long)m * k) ThrowHelper.ThrowArgument($"a has {a.Length} elements but [{m}, {k}] needs {(long)m * k}.", nameof(a));
        if (c.Length < (long)m * n) ThrowHelper.ThrowArgument($"c has {c.Length} elements but [{m}, {n}] needs {(long)m * n}.", nameof(c));
        if (m == 0 || n == 0) return;
        if (k > 0 && c[..(m * n)].Overlaps(a[..(m * k)])) ThrowHelper.ThrowArgument("c must not overlap a.", nameof(c));

        fixed (float* pa = a, pc = c)
        fixed (byte* pw = w.Data.Span)
        {
            if (m > GemvMaxRows && k > 0)
            {
                var bSource = new MatrixSource(pw, k, outerContiguous: false, w.Type);
                GemmDriver.Run(m, n, k, 1f, MatrixSource.ForA(pa, k, false), bSource, accumulate ? 1f : 0f, pc, n, parallel);
            }
            else
            {
                WeightGemvDriver.Run(w.Type, pw, n, k, pa, m, pc, accumulate, parallel);
            }
        }
    }
}
