using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LlmPress.Numerics.Kernels;

/// <summary>
/// Decode GEMV (one activation row) of an 8-bit <see cref="QuantizedMatrix"/> (w = s_g · (u − z_g), u the code byte)
/// with integer inner products: the activation is quantized once to int16 per 128 columns
/// (<see cref="Int16Activation"/>) and each code byte multiplied by it with vpmaddwd. With U_g = Σ_{c∈g} sx_b · x16_c
/// the activation's sum over group g:
/// <code>
///   y_r = Σ_blocks Σ_lanes sw_g · sx_b · Σ_{c∈lane} u_c · x16_c  −  Σ_g sw_g · z_g · U_g  +  Σ_{c ≥ 64·units} w_rc · x_c
/// </code>
/// which is Σ_c W[r, c] · (sx_b · x16_c) up to the FP32 rounding of the scale products and the final sums (the integer
/// sums are exact); the columns past the last whole 64-column unit are taken in FP32 from x.
/// </summary>
/// <remarks>
/// Why: the FP32-activation kernel (<see cref="Int8WeightGemv"/>) spends three instructions per 16 codes (widen,
/// convert, FMA), 12 per 64 bytes, and streamed an INT8 LM head at ~21 GB/s where BF16 reaches ~30. Here 64 code bytes
/// of a row take an AND and a 16-bit shift (the even and the odd columns' bytes as int16 words), two vpmaddwd against
/// the even and odd activation words and one add; a 128-column block then one convert, one multiply by sx_b and one
/// FMA with the row's group scale: ~7 instructions per 64 bytes. The activation loads are shared by four rows. No
/// overflow: an int32 lane sums 8 products of at most 255 · 32767 per block. Rows are independent and go through the
/// same per-row arithmetic whether in a 4-row block or alone, so results do not depend on the thread count.
/// Groups: one per row, any multiple of 128, or 64.
/// </remarks>
internal static unsafe class Int16DotGemv
{
    /// <summary>How far ahead of the 4-row block being read the kernel prefetches, into L2 (as <see cref="Int8DotGemv"/>).</summary>
    private const int PrefetchDistance = 16384;

    /// <summary>True when this CPU runs the kernel (AVX-512 BW).</summary>
    public static bool IsSupported => Avx512BW.IsSupported;

    /// <summary>True when <paramref name="w"/>'s format and grouping fit the kernel.</summary>
    public static bool Applies(QuantizedMatrix w) =>
        w.Bits == 8 && w.Cols >= 64 && (w.Groups == 1 || w.GroupSize % 128 == 0 || w.GroupSize == 64);

    /// <summary>y[r] for rows [r0, r1) (y: [W.Rows]) from x[W.Cols] and its quantized form <paramref name="a"/>.</summary>
    public static void Rows(QuantizedMatrix w, Int16Activation a, float* x, float* y, int r0, int r1)
    {
        if (a.Cols != w.Cols) throw new ArgumentException($"The activation has {a.Cols} columns, the matrix {w.Cols}.", nameof(a));
        if (w.Groups > 1 && w.GroupSize == 64) Run<PerUnit>(w, a, x, y, r0, r1);
        else Run<PerBlock>(w, a, x, y, r0, r1);
    }

    // Compiled fully optimized at once (as Int8DotGemv.Run).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Run<TGroups>(QuantizedMatrix w, Int16Activation a, float* x, float* y, int r0, int r1)
        where TGroups : struct, IGroupStep
    {
        int groups = w.Groups, units = a.Units, blocks = units / 2;
        bool oddUnit = (units & 1) != 0;
        // Blocks per weight group (PerBlock): groups of 128·n columns, or the whole row.
        int blocksPerGroup = groups == 1 ? int.MaxValue : Math.Max(1, w.GroupSize / 128);
        nint rowBytes = w.RowBytes;
        short* x16 = a.Codes;
        float* blockScales = a.BlockScales;
        bool zeroPoints = w.Zeros is not null;
        int paddedGroups = zeroPoints ? (groups + 15) & ~15 : 0;
        float* groupSums = zeroPoints ? ScratchBuffer.Get(ScratchBuffer.Small, paddedGroups) : null;
        // U_g: the half-unit sums (32 columns each) of each group's quantized columns.
        if (zeroPoints)
            Int8DotGemv.SumGroups(a.HalfUnitSums, 2 * a.Units, groups == 1 ? int.MaxValue : w.GroupSize / 32, groups, 1, groupSums, paddedGroups);
        var lastGroups = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(groups - (paddedGroups - 16))).AsSingle();
        var lowBytes = Vector512.Create((short)0xFF);
        using var rowScales = w.GetRowScales(r0, r1);
        fixed (byte* codes = w.Codes)
        fixed (float* scaleValues = rowScales.Values, zeros = w.Zeros)
        {
            float* scales = scaleValues - rowScales.FirstIndex; // row r's at scales + r·groups
            byte* end = codes + w.Codes.LongLength;
            int r = r0;
            for (; r + 4 <= r1; r += 4)
            {
                byte* p0 = codes + r * rowBytes, p1 = p0 + rowBytes, p2 = p1 + rowBytes, p3 = p2 + rowBytes;
                float* s0 = scales + (nint)r * groups, s1 = s0 + groups, s2 = s1 + groups, s3 = s2 + groups;
                Vector512<float> t0 = default, t1 = default, t2 = default, t3 = default;
                // The 4 rows are contiguous: the window [p0 + distance, + 4 rows) is prefetched (into L2) two lines per
                // row per block, and the lines past the whole blocks after the loop (none past the end of the codes).
                byte* pf = p0 + PrefetchDistance + 4 * rowBytes <= end ? p0 + PrefetchDistance : null;
                int g = 0, inGroup = 0;
                for (int b = 0; b < blocks; b++)
                {
                    if (pf != null)
                    {
                        byte* q = pf + b * 512;
                        Sse.Prefetch1(q);
                        Sse.Prefetch1(q + 64);
                        Sse.Prefetch1(q + 128);
                        Sse.Prefetch1(q + 192);
                        Sse.Prefetch1(q + 256);
                        Sse.Prefetch1(q + 320);
                        Sse.Prefetch1(q + 384);
                        Sse.Prefetch1(q + 448);
                    }
                    short* xb = x16 + b * 128;
                    var xe0 = Vector512.Load(xb);
                    var xo0 = Vector512.Load(xb + 32);
                    var xe1 = Vector512.Load(xb + 64);
                    var xo1 = Vector512.Load(xb + 96);
                    var sx = Vector512.Create(blockScales[b]);
                    nint o = b * 128;
                    t0 = TGroups.Block(p0 + o, xe0, xo0, xe1, xo1, lowBytes, sx, s0, b, g, t0);
                    t1 = TGroups.Block(p1 + o, xe0, xo0, xe1, xo1, lowBytes, sx, s1, b, g, t1);
                    t2 = TGroups.Block(p2 + o, xe0, xo0, xe1, xo1, lowBytes, sx, s2, b, g, t2);
                    t3 = TGroups.Block(p3 + o, xe0, xo0, xe1, xo1, lowBytes, sx, s3, b, g, t3);
                    if (++inGroup == blocksPerGroup)
                    {
                        inGroup = 0;
                        g++;
                    }
                }
                if (pf != null)
                    for (nint o = blocks * 512; o < 4 * rowBytes; o += 64) Sse.Prefetch1(pf + o);
                if (oddUnit)
                {
                    short* xb = x16 + blocks * 128;
                    var xe = Vector512.Load(xb);
                    var xo = Vector512.Load(xb + 32);
                    var sx = Vector512.Create(blockScales[blocks]);
                    nint o = blocks * 128;
                    t0 = TGroups.LastUnit(p0 + o, xe, xo, lowBytes, sx, s0, blocks, g, t0);
                    t1 = TGroups.LastUnit(p1 + o, xe, xo, lowBytes, sx, s1, blocks, g, t1);
                    t2 = TGroups.LastUnit(p2 + o, xe, xo, lowBytes, sx, s2, blocks, g, t2);
                    t3 = TGroups.LastUnit(p3 + o, xe, xo, lowBytes, sx, s3, blocks, g, t3);
                }
                if (zeroPoints)
                {
                    float* z0 = zeros + (nint)r * groups;
                    t0 = Int8DotGemv.SubtractZeroPointTerms(t0, s0, z0, groupSums, groups, lastGroups);
                    t1 = Int8DotGemv.SubtractZeroPointTerms(t1, s1, z0 + groups, groupSums, groups, lastGroups);
                    t2 = Int8DotGemv.SubtractZeroPointTerms(t2, s2, z0 + 2 * groups, groupSums, groups, lastGroups);
                    t3 = Int8DotGemv.SubtractZeroPointTerms(t3, s3, z0 + 3 * groups, groupSums, groups, lastGroups);
                }
                y[r] = QuantizedGemv.Tail(w, x, r, 64 * units, Vector512.Sum(t0));
                y[r + 1] = QuantizedGemv.Tail(w, x, r + 1, 64 * units, Vector512.Sum(t1));
                y[r + 2] = QuantizedGemv.Tail(w, x, r + 2, 64 * units, Vector512.Sum(t2));
                y[r + 3] = QuantizedGemv.Tail(w, x, r + 3, 64 * units, Vector512.Sum(t3));
            }
            for (; r < r1; r++)
            {
                // The same per-row arithmetic as in a 4-row block.
                byte* p = codes + r * rowBytes;
                float* s = scales + (nint)r * groups;
                Vector512<float> t = default;
                int g = 0, inGroup = 0;
                for (int b = 0; b < blocks; b++)
                {
                    short* xb = x16 + b * 128;
                    t = TGroups.Block(p + b * 128, Vector512.Load(xb), Vector512.Load(xb + 32), Vector512.Load(xb + 64), Vector512.Load(xb + 96),
                        lowBytes, Vector512.Create(blockScales[b]), s, b, g, t);
                    if (++inGroup == blocksPerGroup)
                    {
                        inGroup = 0;
                        g++;
                    }
                }
                if (oddUnit)
                {
                    short* xb = x16 + blocks * 128;
                    t = TGroups.LastUnit(p + blocks * 128, Vector512.Load(xb), Vector512.Load(xb + 32), lowBytes,
                        Vector512.Create(blockScales[blocks]), s, blocks, g, t);
                }
                if (zeroPoints) t = Int8DotGemv.SubtractZeroPointTerms(t, s, zeros + (nint)r * groups, groupSums, groups, lastGroups);
                y[r] = QuantizedGemv.Tail(w, x, r, 64 * units, Vector512.Sum(t));
            }
        }
    }

    // Σ over one 64-column unit of u·x16 in 16 int32 lanes (lane j: columns 4j..4j+3): the low byte of each 16-bit word
    // is an even column's code, the high byte the next odd column's.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Unit(byte* p, Vector512<short> xe, Vector512<short> xo, Vector512<short> lowBytes)
    {
        var v = Vector512.Load(p).AsInt16();
        return Avx512BW.MultiplyAddAdjacent(v & lowBytes, xe) + Avx512BW.MultiplyAddAdjacent(Avx512BW.ShiftRightLogical(v, 8), xo);
    }

    /// <summary>How a 128-column block's integer sums meet the row's group scales.</summary>
    private interface IGroupStep
    {
        /// <summary>t + block b (two units at p) · sx · its scales; g: the block's group (one group per block or more).</summary>
        static abstract Vector512<float> Block(byte* p, Vector512<short> xe0, Vector512<short> xo0, Vector512<short> xe1, Vector512<short> xo1,
            Vector512<short> lowBytes, Vector512<float> sx, float* rowScales, int b, int g, Vector512<float> t);

        /// <summary>t + the odd last unit (first half of block b) · sx · its scale.</summary>
        static abstract Vector512<float> LastUnit(byte* p, Vector512<short> xe, Vector512<short> xo, Vector512<short> lowBytes,
            Vector512<float> sx, float* rowScales, int b, int g, Vector512<float> t);
    }

    /// <summary>Groups of a multiple of 128 columns, or one per row: one scale per block, the two units summed in int32 first.</summary>
    private struct PerBlock : IGroupStep
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Block(byte* p, Vector512<short> xe0, Vector512<short> xo0, Vector512<short> xe1, Vector512<short> xo1,
            Vector512<short> lowBytes, Vector512<float> sx, float* rowScales, int b, int g, Vector512<float> t) =>
            Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Unit(p, xe0, xo0, lowBytes) + Unit(p + 64, xe1, xo1, lowBytes)) * sx,
                Vector512.Create(rowScales[g]), t);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> LastUnit(byte* p, Vector512<short> xe, Vector512<short> xo, Vector512<short> lowBytes,
            Vector512<float> sx, float* rowScales, int b, int g, Vector512<float> t) =>
            Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Unit(p, xe, xo, lowBytes)) * sx, Vector512.Create(rowScales[g]), t);
    }

    /// <summary>Groups of 64 columns: each unit is a group (units 2b and 2b + 1 of block b).</summary>
    private struct PerUnit : IGroupStep
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Block(byte* p, Vector512<short> xe0, Vector512<short> xo0, Vector512<short> xe1, Vector512<short> xo1,
            Vector512<short> lowBytes, Vector512<float> sx, float* rowScales, int b, int g, Vector512<float> t)
        {
            t = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Unit(p, xe0, xo0, lowBytes)) * sx, Vector512.Create(rowScales[2 * b]), t);
            return Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Unit(p + 64, xe1, xo1, lowBytes)) * sx,
                Vector512.Create(rowScales[2 * b + 1]), t);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> LastUnit(byte* p, Vector512<short> xe, Vector512<short> xo, Vector512<short> lowBytes,
            Vector512<float> sx, float* rowScales, int b, int g, Vector512<float> t) =>
            Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Unit(p, xe, xo, lowBytes)) * sx, Vector512.Create(rowScales[2 * b]), t);
    }
}
