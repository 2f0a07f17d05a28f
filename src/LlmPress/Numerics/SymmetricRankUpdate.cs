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
            if (rows > 0 && alpha != 0) RunLower(px, rows, cols, alpha, ph, parallel);
            MirrorLowerToUpper(ph, cols, cols, parallel);
        }
    }

    /// <summary>
    /// h's lower triangle (row ≥ column) += alpha · xᵀx, without the mirror: for accumulators that only ever read the
    /// lower triangle (GPTQ's Hessian folds it into a packed double sum). Entries above the diagonal are left
    /// undefined (tiles straddling the diagonal add into some of them). Same arithmetic per lower element as
    /// <see cref="Accumulate"/>, so the lower triangles are bit-identical.
    /// </summary>
    /// <exception cref="ArgumentException">x or h is too short, or they overlap.</exception>
    public static void AccumulateLower(ReadOnlySpan<float> x, int rows, int cols, float alpha, Span<float> h, bool parallel = true)
    {
        if (rows < 0) ThrowHelper.ThrowArgumentOutOfRange(nameof(rows), rows, "rows must be non-negative.");
        if (cols < 0) ThrowHelper.ThrowArgumentOutOfRange(nameof(cols), cols, "cols must be non-negative.");
        ThrowHelper.CheckMatrix(x.Length, rows, cols, cols, nameof(x));
        ThrowHelper.CheckMatrix(h.Length, cols, cols, cols, nameof(h));
        if (cols == 0 || rows == 0 || alpha == 0) return;
        if (h.Overlaps(x)) ThrowHelper.ThrowArgument("h must not overlap x.", nameof(h));
        fixed (float* px = x, ph = h) RunLower(px, rows, cols, alpha, ph, parallel);
    }

    private static void RunLower(float* x, int rows, int cols, float alpha, float* h, bool parallel)
    {
        // op(A)(i, p) = x[p, i] and op(B)(p, j) = x[p, j]: both are x read with the column index contiguous.
        var source = new MatrixSource(x, cols, outerContiguous: true);
        GemmDriver.Run(cols, cols, rows, alpha, source, source, 1f, h, cols, parallel, lowerOnly: true);
    }

    /// <summary>
    /// a[i, j] = a[j, i] for j &gt; i, in 32×32 blocks so both sides stay in cache; row blocks are split across threads
    /// for large n (writes go to the upper triangle, reads come from the lower, so blocks never conflict).
    /// </summary>
    internal static void MirrorLowerToUpper(float* a, int n, nint lda, bool parallel = false)
    {
        int blocks = (n + MirrorBlock - 1) / MirrorBlock;
        int threads = parallel && n >= 1024 ? Math.Min(Parallelism.MaxThreads, blocks) : 1;
        if (threads <= 1)
        {
            for (int b = 0; b < blocks; b++) MirrorRowBlock(a, n, lda, b);
            return;
        }
        var job = new MirrorJob { A = (nint)a, N = n, Lda = lda, Blocks = blocks };
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, job.Work);
    }

    private const int MirrorBlock = 32;

    private sealed class MirrorJob
    {
        public nint A, Lda;
        public int N, Blocks;
        private int _next;

        // Row block 0 has the most work (the whole first rows), so taking blocks in order is heaviest first.
        public void Work(int _)
        {
            int b;
            while ((b = Interlocked.Increment(ref _next) - 1) < Blocks) MirrorRowBlock((float*)A, N, Lda, b);
        }
    }

    private static void MirrorRowBlock(float* a, int n, nint lda, int block)
    {
        int ib = block * MirrorBlock, ie = Math.Min(n, ib + MirrorBlock);
        for (int jb = ib; jb < n; jb += MirrorBlock)
        {
            int je = Math.Min(n, jb + MirrorBlock);
            for (int i = ib; i < ie; i++)
            {
                float* row = a + i * lda;
                for (int j = Math.Max(jb, i + 1); j < je; j++) row[j] = a[j * lda + i];
            }
        }
    }
}
