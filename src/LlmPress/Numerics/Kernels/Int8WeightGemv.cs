using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LlmPress.Numerics.Kernels;

/// <summary>
/// Decode GEMV (one FP32 activation row, exact: used when decode activations are not quantized, or the grouping does
/// not fit <see cref="Int16DotGemv"/>) of an 8-bit <see cref="QuantizedMatrix"/> (INT8: w = s_g · (u − z_g), u the
/// code byte), four rows at a time on AVX-512. Per group g and 16-lane slice of its columns:
/// <code>
///   y_r = Σ_g s_g · ( Σ_{c∈g} u_c · x_c  −  z_g · X_g ),     X_g = Σ_{c∈g} x_c (lane-wise, the same for every row)
/// </code>
/// so a code costs three instructions (widen the byte to int32 from memory, convert, FMA into the row's group
/// accumulator), the four rows share each activation load, and scale and zero point come in once per group and row.
/// </summary>
/// <remarks>
/// Why not <see cref="QuantizedGemv"/>'s general loop: it decodes w = (u − z)·s per code (five instructions per 16)
/// and found each 16-column chunk's group with an integer division, ~8 GB/s on an INT8 LM head (49152 × 576) where
/// BF16 streams ~30. The code bytes are exact in FP32 and the integer zero points too, so the only roundings are the
/// FP32 sums; subtracting z_g·X_g after summing u·x (rather than per code) loses at most a few ulps of
/// Σ|u·x| ≤ 255·Σ|x| per group, far below the 8-bit grid's own error. Columns past the last full 16-column chunk go
/// through the scalar decoder. Rows are independent and a row takes the same arithmetic in a 4-row block or alone, so
/// results do not depend on the thread count.
/// </remarks>
internal static unsafe class Int8WeightGemv
{
    /// <summary>How far ahead of the 4-row block being read the kernel prefetches, into L2 (as <see cref="Int8DotGemv"/>).</summary>
    private const int PrefetchDistance = 16384;

    /// <summary>y[r] for rows [r0, r1) (y: [W.Rows]) of an 8-bit matrix; scales: row r's FP32 group scales at scales + r·groups.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows(QuantizedMatrix w, float* scales, float* x, float* y, int r0, int r1)
    {
        int k = w.Cols, groups = w.Groups, full = k / 16;
        int chunksPerGroup = groups == 1 ? Math.Max(1, full) : w.GroupSize / 16;
        int fullGroups = Math.Min(groups, (full + chunksPerGroup - 1) / chunksPerGroup); // groups with a full chunk
        nint rowBytes = w.RowBytes;
        // X_g, lane-wise over each group's full chunks: [fullGroups, 16].
        float* sums = ScratchBuffer.Get(ScratchBuffer.Small, (long)Math.Max(1, fullGroups) * 16);
        for (int g = 0; g < fullGroups; g++)
        {
            var s = Vector512<float>.Zero;
            for (int c = g * chunksPerGroup, last = Math.Min(full, c + chunksPerGroup); c < last; c++) s += Vector512.Load(x + c * 16);
            s.Store(sums + g * 16);
        }
        fixed (byte* codes = w.Codes)
        fixed (float* zeros = w.Zeros)
        {
            byte* end = codes + w.Codes.LongLength;
            int r = r0;
            for (; r + 4 <= r1; r += 4)
            {
                byte* p0 = codes + r * rowBytes, p1 = p0 + rowBytes, p2 = p1 + rowBytes, p3 = p2 + rowBytes;
                float* s0 = scales + (nint)r * groups;
                float* z0 = zeros == null ? null : zeros + (nint)r * groups;
                // The 4 rows are contiguous: the window [p0 + distance, + 4 rows) is prefetched a line per row per 64
                // columns, and the lines past the full 64-column steps after the loop (none past the end of the codes).
                byte* pf = p0 + PrefetchDistance + 4 * rowBytes <= end ? p0 + PrefetchDistance : null;
                Vector512<float> t0 = default, t1 = default, t2 = default, t3 = default;
                for (int g = 0; g < fullGroups; g++)
                {
                    Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                    for (int c = g * chunksPerGroup, last = Math.Min(full, c + chunksPerGroup); c < last; c++)
                    {
                        if (pf != null && (c & 3) == 0)
                        {
                            byte* q = pf + c * 64;
                            Sse.Prefetch1(q);
                            Sse.Prefetch1(q + 64);
                            Sse.Prefetch1(q + 128);
                            Sse.Prefetch1(q + 192);
                        }
                        var xc = Vector512.Load(x + c * 16);
                        a0 = Avx512F.FusedMultiplyAdd(Widen(p0 + c * 16), xc, a0);
                        a1 = Avx512F.FusedMultiplyAdd(Widen(p1 + c * 16), xc, a1);
                        a2 = Avx512F.FusedMultiplyAdd(Widen(p2 + c * 16), xc, a2);
                        a3 = Avx512F.FusedMultiplyAdd(Widen(p3 + c * 16), xc, a3);
                    }
                    var xg = Vector512.Load(sums + g * 16);
                    t0 = CloseGroup(a0, xg, s0, z0, g, t0);
                    t1 = CloseGroup(a1, xg, s0 + groups, z0 == null ? null : z0 + groups, g, t1);
                    t2 = CloseGroup(a2, xg, s0 + 2 * groups, z0 == null ? null : z0 + 2 * groups, g, t2);
                    t3 = CloseGroup(a3, xg, s0 + 3 * groups, z0 == null ? null : z0 + 3 * groups, g, t3);
                }
                if (pf != null)
                    for (nint o = (full + 3) / 4 * 256; o < 4 * rowBytes; o += 64) Sse.Prefetch1(pf + o);
                y[r] = QuantizedGemv.Tail(w, x, r, full * 16, Vector512.Sum(t0));
                y[r + 1] = QuantizedGemv.Tail(w, x, r + 1, full * 16, Vector512.Sum(t1));
                y[r + 2] = QuantizedGemv.Tail(w, x, r + 2, full * 16, Vector512.Sum(t2));
                y[r + 3] = QuantizedGemv.Tail(w, x, r + 3, full * 16, Vector512.Sum(t3));
            }
            for (; r < r1; r++)
            {
                // The same per-row arithmetic as in a 4-row block.
                byte* p = codes + r * rowBytes;
                float* s = scales + (nint)r * groups;
                float* z = zeros == null ? null : zeros + (nint)r * groups;
                Vector512<float> t = default;
                for (int g = 0; g < fullGroups; g++)
                {
                    Vector512<float> a = default;
                    for (int c = g * chunksPerGroup, last = Math.Min(full, c + chunksPerGroup); c < last; c++)
                        a = Avx512F.FusedMultiplyAdd(Widen(p + c * 16), Vector512.Load(x + c * 16), a);
                    t = CloseGroup(a, Vector512.Load(sums + g * 16), s, z, g, t);
                }
                y[r] = QuantizedGemv.Tail(w, x, r, full * 16, Vector512.Sum(t));
            }
        }
    }

    // 16 code bytes → 16 exact floats.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Widen(byte* codes) =>
        Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(codes)));

    // t + s_g · (Σu·x − z_g · X_g), lane-wise.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> CloseGroup(Vector512<float> products, Vector512<float> groupSum, float* rowScales, float* rowZeros, int g,
        Vector512<float> t)
    {
        if (rowZeros != null) products = Avx512F.FusedMultiplyAddNegated(Vector512.Create(rowZeros[g]), groupSum, products);
        return Avx512F.FusedMultiplyAdd(products, Vector512.Create(rowScales[g]), t);
    }
}
