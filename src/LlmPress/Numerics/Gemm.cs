using LlmPress.Numerics.Kernels;

namespace LlmPress.Numerics;

/// <summary>
/// FP32 matrix products on the CPU: a blocked, packed GEMM (AVX-512 6×64 register tile; AVX2 6×16 and scalar
/// fallbacks) and a weight product that widens F16/BF16 weights while packing (prefill) or streaming (decode).
/// Results are bit-identical for any <see cref="Parallelism.MaxThreads"/>: threads split output tiles only and
/// every K sum runs in one fixed order. They may differ in the last bits between instruction-set tiers, and
/// between the GEMV (small m, see <see cref="GemvMaxRows"/>) and GEMM paths of <see cref="MultiplyByWeight"/>.
/// </summary>
public static unsafe class Gemm
{
    /// <summary>
    /// <see cref="MultiplyByWeight"/> always uses the streaming GEMV for m ≤ this, and also up to
    /// <see cref="GemvMaxRowsSmallActivation"/> rows while a[m, k] stays within 512 KiB (half an L2), because the GEMV
    /// needs no packing: each 4-row weight block sits in L1 while a streams from L2. Measured 1 thread, BF16, 2-core Zen 4:
    /// m = 8, 16, 32 at k = 576: GEMV 91–93 vs GEMM (packed) 51–89 GFLOP/s; k = 1536: 103–105 vs 53–87;
    /// m = 64: GEMM 100–103, GEMV 105 at k = 1536. The GEMV re-reads all of a for every 4 weight rows, so the limit
    /// stays conservative (32 rows, 512 KiB) rather than chasing that last crossover.
    /// </summary>
    public const int GemvMaxRows = 7;

    /// <summary>Upper bound on m for the GEMV when a is small (see <see cref="GemvMaxRows"/>).</summary>
    public const int GemvMaxRowsSmallActivation = 32;

    internal static bool UseGemv(int m, int k) => m <= GemvMaxRows || (m <= GemvMaxRowsSmallActivation && (long)m * k <= 128 * 1024);

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
    /// Hugging Face [out, in] layout). F16/BF16 weights are widened to FP32 while packing (GEMM) or while
    /// streaming (GEMV: m ≤ 7, or m ≤ 32 with a small a; memory-bound at m = 1); the whole matrix is never expanded. Runs on up to
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
            if (!UseGemv(m, k) && k > 0)
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
    /// <summary>Activation rows up to which <see cref="MultiplyByQuantized"/> runs the packed GEMV instead of decoding tiles for the GEMM.</summary>
    internal const int QuantizedGemvMaxRows = 32;

    /// <summary>FP32 elements per decoded weight tile of a many-row <see cref="MultiplyByQuantized"/>: 8 MB, well inside L3, where the GEMM's packing reads it back.</summary>
    private const long MaxTileElements = 1 << 21;

    /// <summary>
    /// c[m, n] = a[m, k] · w[n, k]ᵀ for a low-bit <see cref="QuantizedMatrix"/> (k = w.Cols, n = w.Rows), without
    /// expanding w: up to 32 rows of a are multiplied straight from the codes (memory-bound at m = 1); more rows decode
    /// tiles of up to 8 MB of w to FP32 and run the packed SGEMM on each, so the decoding is amortised over m and large products
    /// run at GEMM speed. Results do not depend on the thread count.
    /// </summary>
    /// <param name="int8Activations">
    /// At m = 1 (decode), for 4-bit formats whose levels are small integers up to a power-of-two factor (INT4, MXFP4,
    /// NVFP4) on AVX-512 BW: quantize a to int8 per 32 columns (scale max|a|/127) and take the inner products in
    /// integers, ~3× fewer instructions per weight. Each activation then carries a rounding error of at most half its
    /// block's scale (≤ 0.4% of the block's max|a|); false keeps the exact FP32-activation product.
    /// </param>
    /// <exception cref="ArgumentException">a or c is too short, or c overlaps a.</exception>
    public static void MultiplyByQuantized(ReadOnlySpan<float> a, int m, QuantizedMatrix w, Span<float> c, bool parallel = true,
        bool int8Activations = false)
    {
        ArgumentNullException.ThrowIfNull(w);
        int k = w.Cols, n = w.Rows;
        if (m < 0) ThrowHelper.ThrowArgumentOutOfRange(nameof(m), m, "m must be non-negative.");
        if (a.Length < (long)m * k) ThrowHelper.ThrowArgument($"a has {a.Length} elements but [{m}, {k}] needs {(long)m * k}.", nameof(a));
        if (c.Length < (long)m * n) ThrowHelper.ThrowArgument($"c has {c.Length} elements but [{m}, {n}] needs {(long)m * n}.", nameof(c));
        if (m == 0 || n == 0) return;
        if (c[..(m * n)].Overlaps(a[..(m * k)])) ThrowHelper.ThrowArgument("c must not overlap a.", nameof(c));
        if (m <= QuantizedGemvMaxRows)
        {
            fixed (float* pa = a, pc = c) QuantizedGemv.Run(w, pa, m, pc, parallel, int8Activations);
            return;
        }
        MultiplyByDecodedTiles(a, m, w, c, parallel, MaxTileElements);
    }

    /// <summary>
    /// The many-row product: decodes tiles of at most <paramref name="maxTileElements"/> FP32 weights and runs the SGEMM on
    /// each. Tiles are as few and as even as possible: each is a separate GEMM that packs all of a again, so 2 MB tiles
    /// (two for a [576, 1536] down_proj) made a 2048-row product 20% slower than with FP32 weights. Any tiling gives the
    /// same bits (each output's sum over k is the same).
    /// </summary>
    internal static void MultiplyByDecodedTiles(ReadOnlySpan<float> a, int m, QuantizedMatrix w, Span<float> c, bool parallel, long maxTileElements)
    {
        int k = w.Cols, n = w.Rows;
        int tiles = (int)Math.Max(1, ((long)n * k + maxTileElements - 1) / maxTileElements);
        int tileRows = Math.Min(n, Math.Max(16, ((n + tiles - 1) / tiles + 15) / 16 * 16));
        float[] tile = System.Buffers.ArrayPool<float>.Shared.Rent(tileRows * k);
        try
        {
            for (int n0 = 0; n0 < n; n0 += tileRows)
            {
                int rows = Math.Min(tileRows, n - n0);
                fixed (float* pt = tile) QuantizedGemv.DecodeRows(w, n0, n0 + rows, pt);
                Sgemm(false, true, m, rows, k, 1f, a, k, tile.AsSpan(0, rows * k), k, 0f, c[n0..], n, parallel);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(tile);
        }
    }
}
