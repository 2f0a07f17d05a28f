using LlmPress.Numerics.Kernels;

namespace LlmPress.Numerics;

/// <summary>
/// Symmetric rank-k update (SYRK) for GPTQ Hessians: h[cols, cols] += alpha · xᵀ · x with x [rows, cols] row-major.
/// Only GEMM tiles touching the lower triangle are computed (about half the flops of a GEMM), then the lower
/// triangle is mirrored, so h comes out exactly symmetric. Deterministic for any thread count.
/// </summary>
public static unsafe class SymmetricRankUpdate
{
    /// <summary>
    /// h += alpha · xᵀx. x: [rows, cols]; h: [cols, cols], symmetric on entry (only its lower triangle is read),
    /// exactly symmetric on exit.
    /// </summary>
    /// <exception cref="ArgumentException">x or h is too short, or they overlap.</exception>
    public static void Accumulate(ReadOnlySpan<float> x, int rows, int cols, float alpha, Span<float> h, bool parallel = true)
    {
        if (rows < 0) ThrowHelper.ThrowArgumentOutOfRange(nameof(rows), rows, "rows must be non-negative.");
        if (cols < 0) ThrowHelper.ThrowArgumentOutOfRange(nameof(cols), cols, "cols must be non-negative.");
        ThrowHelper.CheckMatrix(x.Length, rows, cols, cols, nameof(x));
        ThrowHelper.CheckMatrix(h.Length, cols, cols, cols, nameof(h));
        if (cols == 0) return;
        if (rows > 0 && h.Overlaps(x)) ThrowHelper.ThrowArgument("h must not overlap x.", nameof(h));

        fixed (float* px = x, ph = h)
        {
            if (rows > 0 && alpha != 0)
            {
                // op(A)(i, p) = x[p, i] and op(B)(p, j) = x[p, j]: both are x read with the column index contiguous.
                var source = new MatrixSource(px, cols, outerContiguous: true);
                GemmDriver.Run(cols, cols, rows, alpha, source, source, 1f, ph, cols, parallel, lowerOnly: true);
            }
            MirrorLowerToUpper(ph, cols, cols);
        }
    }

    /// <summary>a[i, j] = a[j, i] for j &gt; i, in 32×32 blocks so both sides stay in cache.</summary>
    internal static void MirrorLowerToUpper(float* a, int n, nint lda)
    {
        const int B = 32;
        for (int ib = 0; ib < n; ib += B)
        {
            int ie = Math.Min(n, ib + B);
            for (int jb = ib; jb < n; jb += B)
            {
                int je = Math.Min(n, jb + B);
                for (int i = ib; i < ie; i++)
                {
                    float* row = a + i * lda;
                    for (int j = Math.Max(jb, i + 1); j < je; j++) row[j] = a[j * lda + i];
                }
            }
        }
    }
}
