using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LlmPress.Numerics.Kernels;

/// <summary>
/// Decode GEMV (one activation row) of a 4-bit <see cref="QuantizedMatrix"/> with integer inner products: the
/// activation is quantized once to int8 per 32 columns (<see cref="Int8Activation"/>) and each weight code, written
/// as a small byte u (<see cref="ByteLevels"/>: level = (u − O)/F), is multiplied by it in integers. With lane L of a
/// 128-column chunk covering its columns 8L..8L+7 (one 32-column block b, one weight group g when groups are ≥ 16),
/// and T_g = Σ_{c∈g} sx_b · x8_c the activation's sum over group g:
/// <code>
///   y_r = (1/F) · ( Σ_chunks Σ_L sw_g · sx_b · Σ_{c∈L} u_c·x8_c  −  Σ_g sw_g · (O + F·z_g) · T_g )
/// </code>
/// which is Σ_c W[r, c] · (sx_b · x8_c) exactly up to the FP32 rounding of the scale products and the final sums
/// (the integer sums are exact). Zero points come with integer levels only (F = 1, O = 0).
/// </summary>
/// <remarks>
/// Why: the FP32-activation kernel (<see cref="QuantizedGemv"/>) spends ~7 vector instructions per 32 weights
/// widening codes to floats and is instruction-bound below memory bandwidth. Here 128 weights (64 bytes of codes) of a
/// row take: one load, two instructions for the low and high nibbles' bytes (INT4: an AND and a GFNI affine shift;
/// E2M1: a 16-bit shift and two vpermb through the byte table), two vpmaddubsw (u8 × s8 → pairs summed in int16), one
/// int16 add, one vpmaddwd against ones (→ 16 int32 lanes), then one convert, one multiply by the lanes' sx and one
/// FMA with the lanes' weight scales; the activation loads are shared by four rows. The offset/zero-point term takes
/// 16 groups per FMA, once per row. (VNNI's vpdpbusd would fuse the three integer steps, but .NET 10 exposes it only
/// as AvxVnni / Avx10v1, neither of which Zen 4/5 reports.) No overflow: u ≤ 64 and |x8| ≤ 127 keep each int16 sum of
/// four products below 32768, and an int32 lane holds eight products per chunk. Rows are independent and go through
/// the same per-row arithmetic whether in a 4-row block or alone, so results do not depend on the thread count.
/// Groups: 16, 32, 64, any multiple of 128, or one per row.
/// </remarks>
internal static unsafe class Int8DotGemv
{
    /// <summary>
    /// How far ahead of the 4-row block being read the kernel prefetches, into L2 (prefetcht1). Decode reads each matrix
    /// once, from DRAM, and this loop has enough arithmetic per cache line that the hardware prefetcher alone left it
    /// waiting on memory: 4 KiB ahead into L1 took a 2-thread INT4 decode step of the SmolLM2-135M shape from 6.9 to
    /// 5.6 ms (p50; 1, 2, 3, 5 and 8 KiB into L1 were each slower than 4, a burst prefetch at each chunk's start and
    /// fewer chunks per thread gained nothing). Into L2 the requests can run further ahead: per-token p10 of decode-tps
    /// 2 2, medians of 3 interleaved rounds, 4 KiB into L1 → 12 KiB / 16 KiB into L2: INT4 5.88 → 5.64 / 5.50 ms, MXFP4
    /// 5.76 → 5.28 / 4.88, NVFP4 5.73 → 5.13 / 5.14 (8 KiB into L2 was between; 8 KiB into L1 no better than 4).
    /// </summary>
    private const int PrefetchDistance = 16384;

    /// <summary>True when this CPU runs the kernel (AVX-512 BW).</summary>
    public static bool IsSupported => Avx512BW.IsSupported && Avx512F.VL.IsSupported;

    /// <summary>True when <paramref name="w"/>'s format and grouping fit the kernel (zero points only with integer levels).</summary>
    public static bool Applies(QuantizedMatrix w) =>
        w.Bits == 4 && w.ByteLevels is { } map && (w.Zeros is null || (map.Factor == 1 && map.Offset == 0))
        && (w.Groups == 1 || w.GroupSize % 128 == 0 || w.GroupSize is 16 or 32 or 64);

    /// <summary>y[r] for rows [r0, r1) (y: [W.Rows]) from the activation quantized by <see cref="Int8Activation.Quantize"/>.</summary>
    public static void Rows(QuantizedMatrix w, Int8Activation a, float* y, int r0, int r1)
    {
        if (a.Cols != w.Cols) throw new ArgumentException($"The activation has {a.Cols} columns, the matrix {w.Cols}.", nameof(a));
        if (w.ByteLevels!.IsIdentity)
        {
            if (w.Zeros is null) Rows<Nibbles, NoZeros>(w, a, y, r0, r1);
            else Rows<Nibbles, Zeros>(w, a, y, r0, r1);
        }
        else Rows<Lookup, NoZeros>(w, a, y, r0, r1);
    }

    private static void Rows<TMap, TZeros>(QuantizedMatrix w, Int8Activation a, float* y, int r0, int r1)
        where TMap : struct, INibbleMap where TZeros : struct, IZeroPoints
    {
        if (w.Groups == 1 || w.GroupSize % 128 == 0) Run<TMap, TZeros, Broadcast>(w, a, y, r0, r1);
        else if (w.GroupSize == 64) Run<TMap, TZeros, Halves>(w, a, y, r0, r1);
        else if (w.GroupSize == 32) Run<TMap, TZeros, Quarters>(w, a, y, r0, r1);
        else Run<TMap, TZeros, Eighths>(w, a, y, r0, r1);
    }

    // Compiled fully optimized at once: tiered up with PGO, the tail step's vectors spilled to the stack on every block.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Run<TMap, TZeros, TLanes>(QuantizedMatrix w, Int8Activation a, float* y, int r0, int r1)
        where TMap : struct, INibbleMap where TZeros : struct, IZeroPoints where TLanes : struct, ILaneScales
    {
        int k = w.Cols, groups = w.Groups, groupSize = w.GroupSize, full = k / 128;
        nint rowBytes = w.RowBytes;
        var map = w.ByteLevels!;
        var table = map.Table;
        float inverseFactor = 1f / map.Factor;
        int chunksPerGroup = groups == 1 ? int.MaxValue : Math.Max(1, groupSize / 128); // Broadcast only
        // The partial last chunk: its codes and (masked lane modes) its groups' scales are read with masks.
        bool tail = full < a.Chunks;
        // A tail of ≤ 64 columns (≤ 32 bytes) fills only lanes 0–7: one 256-bit step (HalfTailStep), half the work.
        bool half = tail && rowBytes - full * 64 <= 32;
        var codeMask = Vector512.LessThan(Vector512<byte>.Indices, Vector512.Create((byte)(rowBytes - full * 64))); // 0..64 bytes
        int tailGroups = groups - Math.Min(groups - 1, full * 128 / groupSize);
        var scaleMask = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(tailGroups)).AsSingle();
        sbyte* x8 = a.Codes;
        float* laneScales = a.LaneScales;
        // Level offsets and zero points come off once per row, over its groups, not per chunk: with T_g = Σ_{c∈g} sx·x8_c,
        //   Σ_c sw_g·(u_c − O − F·z_g)·sx·x8_c = Σ_c sw_g·u_c·sx·x8_c − Σ_g sw_g·(O + F·z_g)·T_g,
        // and the second sum takes 16 groups per step (Correct) where the first takes one 128-column chunk.
        bool corrected = TMap.HasOffset || TZeros.Present;
        int paddedGroups = corrected ? (groups + 15) & ~15 : 0;
        float* groupSums = corrected ? ScratchBuffer.Get(ScratchBuffer.Small, paddedGroups) : null;
        if (corrected) GroupSums(a, groups, groupSize, TMap.HasOffset ? map.Offset : 1, groupSums, paddedGroups);
        var lastGroups = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(groups - (paddedGroups - 16))).AsSingle();
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
                int g = 0, inGroup = 0;
                // The 4 rows are contiguous: the window [p0 + distance, + 4 rows) is prefetched (into L2) a line per row per chunk,
                // and the lines past the full chunks after the loop (none past the end of the codes).
                byte* pf = p0 + PrefetchDistance + 4 * rowBytes <= end ? p0 + PrefetchDistance : null;
                for (int c = 0; c < full; c++)
                {
                    if (pf != null)
                    {
                        byte* q = pf + c * 256;
                        Sse.Prefetch1(q);
                        Sse.Prefetch1(q + 64);
                        Sse.Prefetch1(q + 128);
                        Sse.Prefetch1(q + 192);
                    }
                    var xe = Vector512.Load(x8 + c * 128);
                    var xo = Vector512.Load(x8 + c * 128 + 64);
                    var sx = Vector512.Load(laneScales + c * 16);
                    t0 = Step<TMap>(Vector512.Load(p0 + c * 64), xe, xo, sx, TLanes.Full(s0, c, g), table, t0);
                    t1 = Step<TMap>(Vector512.Load(p1 + c * 64), xe, xo, sx, TLanes.Full(s1, c, g), table, t1);
                    t2 = Step<TMap>(Vector512.Load(p2 + c * 64), xe, xo, sx, TLanes.Full(s2, c, g), table, t2);
                    t3 = Step<TMap>(Vector512.Load(p3 + c * 64), xe, xo, sx, TLanes.Full(s3, c, g), table, t3);
                    if (++inGroup == chunksPerGroup)
                    {
                        inGroup = 0;
                        g++;
                    }
                }
                if (pf != null)
                    for (nint o = full * 256; o < 4 * rowBytes; o += 64) Sse.Prefetch1(pf + o);
                if (corrected)
                {
                    float* z0 = TZeros.Present ? zeros + (nint)r * groups : null;
                    t0 = Correct<TZeros>(t0, s0, z0, groupSums, groups, lastGroups);
                    t1 = Correct<TZeros>(t1, s1, z0 + groups, groupSums, groups, lastGroups);
                    t2 = Correct<TZeros>(t2, s2, z0 + 2 * groups, groupSums, groups, lastGroups);
                    t3 = Correct<TZeros>(t3, s3, z0 + 3 * groups, groupSums, groups, lastGroups);
                }
                if (tail && !half)
                {
                    t0 = TailStep<TMap, TLanes>(p0, s0, x8, laneScales, full, g, codeMask, scaleMask, table, t0);
                    t1 = TailStep<TMap, TLanes>(p1, s1, x8, laneScales, full, g, codeMask, scaleMask, table, t1);
                    t2 = TailStep<TMap, TLanes>(p2, s2, x8, laneScales, full, g, codeMask, scaleMask, table, t2);
                    t3 = TailStep<TMap, TLanes>(p3, s3, x8, laneScales, full, g, codeMask, scaleMask, table, t3);
                }
                Vector256<float> h0 = t0.GetLower() + t0.GetUpper(), h1 = t1.GetLower() + t1.GetUpper();
                Vector256<float> h2 = t2.GetLower() + t2.GetUpper(), h3 = t3.GetLower() + t3.GetUpper();
                if (half)
                {
                    h0 = HalfTailStep<TMap, TLanes>(p0, s0, x8, laneScales, full, g, codeMask, scaleMask, table, h0);
                    h1 = HalfTailStep<TMap, TLanes>(p1, s1, x8, laneScales, full, g, codeMask, scaleMask, table, h1);
                    h2 = HalfTailStep<TMap, TLanes>(p2, s2, x8, laneScales, full, g, codeMask, scaleMask, table, h2);
                    h3 = HalfTailStep<TMap, TLanes>(p3, s3, x8, laneScales, full, g, codeMask, scaleMask, table, h3);
                }
                (Reduce4(h0, h1, h2, h3) * inverseFactor).Store(y + r);
            }
            for (; r < r1; r++)
            {
                // The same per-row arithmetic as in a 4-row block (each output of Reduce4 depends on its own row only).
                byte* p = codes + r * rowBytes;
                float* s = scales + (nint)r * groups;
                Vector512<float> t = default;
                int g = 0, inGroup = 0;
                for (int c = 0; c < full; c++)
                {
                    t = Step<TMap>(Vector512.Load(p + c * 64), Vector512.Load(x8 + c * 128), Vector512.Load(x8 + c * 128 + 64),
                        Vector512.Load(laneScales + c * 16), TLanes.Full(s, c, g), table, t);
                    if (++inGroup == chunksPerGroup)
                    {
                        inGroup = 0;
                        g++;
                    }
                }
                if (corrected) t = Correct<TZeros>(t, s, TZeros.Present ? zeros + (nint)r * groups : null, groupSums, groups, lastGroups);
                if (tail && !half) t = TailStep<TMap, TLanes>(p, s, x8, laneScales, full, g, codeMask, scaleMask, table, t);
                var h = t.GetLower() + t.GetUpper();
                if (half) h = HalfTailStep<TMap, TLanes>(p, s, x8, laneScales, full, g, codeMask, scaleMask, table, h);
                y[r] = (Reduce4(h, h, h, h) * inverseFactor).ToScalar();
            }
        }
    }

    /// <summary>
    /// u[g] = scale · T_g for g &lt; groups (T_g = Σ sx·x8 over group g's columns: the sum of its half-block sums, in
    /// double and rounded once), zero up to <paramref name="padded"/>.
    /// </summary>
    private static void GroupSums(Int8Activation a, int groups, int groupSize, int scale, float* u, int padded) =>
        SumGroups(a.HalfBlockSums, (a.Cols + 15) / 16, groups == 1 ? int.MaxValue : groupSize / 16, groups, scale, u, padded);

    /// <summary>
    /// u[g] = scale · Σ of parts [g·perGroup, (g + 1)·perGroup) of <paramref name="parts"/> (an activation's per-slice
    /// sums, <paramref name="count"/> of them; summed in double and rounded once) for g &lt; groups, zero up to
    /// <paramref name="padded"/>: what each weight group's zero point (or level offset) multiplies.
    /// </summary>
    internal static void SumGroups(float* parts, int count, int perGroup, int groups, int scale, float* u, int padded)
    {
        for (int g = 0; g < padded; g++)
        {
            double sum = 0;
            if (g < groups)
                for (long h = (long)g * perGroup, last = Math.Min(count, h + perGroup); h < last; h++) sum += parts[h];
            u[g] = (float)(scale * sum);
        }
    }

    /// <summary>t − Σ_g sw_g · z_g · u_g over a row's groups, 16 per step (s: the row's scales, z: its zero points, u: [16·⌈groups/16⌉] zero-padded).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> SubtractZeroPointTerms(Vector512<float> t, float* s, float* z, float* u, int groups, Vector512<float> lastGroups) =>
        Correct<Zeros>(t, s, z, u, groups, lastGroups);

    // t − Σ_g c_g · u_g over a row's groups, 16 per step (groups past the row load as zero), with c_g = sw_g (level
    // offset: u = O·T) or sw_g · z_g (zero points: u = T). The lanes of t are summed at the end, so which lane a group
    // lands in does not matter.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Correct<TZeros>(Vector512<float> t, float* s, float* z, float* u, int groups, Vector512<float> lastGroups)
        where TZeros : struct, IZeroPoints
    {
        int g = 0;
        for (; g + 16 <= groups; g += 16)
        {
            var c = Vector512.Load(s + g);
            if (TZeros.Present) c *= Vector512.Load(z + g);
            t = Avx512F.FusedMultiplyAddNegated(c, Vector512.Load(u + g), t);
        }
        if (g < groups)
        {
            var c = Avx512F.MaskLoad(s + g, lastGroups, Vector512<float>.Zero);
            if (TZeros.Present) c *= Avx512F.MaskLoad(z + g, lastGroups, Vector512<float>.Zero);
            t = Avx512F.FusedMultiplyAddNegated(c, Vector512.Load(u + g), t);
        }
        return t;
    }

    // t + (Σ_{8 columns of lane L} u·x8) · sx_L · sw_L over the 16 lanes of one 128-column chunk.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Step<TMap>(Vector512<byte> q, Vector512<sbyte> xe, Vector512<sbyte> xo, Vector512<float> sx,
        Vector512<float> sw, Vector512<byte> table, Vector512<float> t)
        where TMap : struct, INibbleMap
    {
        var pairs = Avx512BW.MultiplyAddAdjacent(TMap.Low(q, table), xe) + Avx512BW.MultiplyAddAdjacent(TMap.High(q, table), xo);
        var lanes = Avx512BW.MultiplyAddAdjacent(pairs, Vector512<short>.One);
        return Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(lanes) * sx, sw, t);
    }

    // The partial last chunk c: codes past the row read as zero (the activation is zero there too), scales of groups
    // past the row as zero.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> TailStep<TMap, TLanes>(byte* p, float* s, sbyte* x8, float* laneScales, int c, int g,
        Vector512<byte> codeMask, Vector512<float> scaleMask, Vector512<byte> table, Vector512<float> t)
        where TMap : struct, INibbleMap where TLanes : struct, ILaneScales =>
        Step<TMap>(Avx512BW.MaskLoad(p + c * 64, codeMask, Vector512<byte>.Zero), Vector512.Load(x8 + c * 128),
            Vector512.Load(x8 + c * 128 + 64), Vector512.Load(laneScales + c * 16), TLanes.Tail(s, c, g, scaleMask), table, t);

    // A partial last chunk of ≤ 32 bytes (≤ 64 columns, e.g. 576 = 4·128 + 64) fills lanes 0–7 only: the same
    // arithmetic on those lanes as TailStep, 256 bits wide, added into the row's sums already folded to 8 lanes (the
    // upper lanes would add exact zeros).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> HalfTailStep<TMap, TLanes>(byte* p, float* s, sbyte* x8, float* laneScales, int c, int g,
        Vector512<byte> codeMask, Vector512<float> scaleMask, Vector512<byte> table, Vector256<float> h)
        where TMap : struct, INibbleMap where TLanes : struct, ILaneScales =>
        Step256<TMap>(Avx512BW.VL.MaskLoad(p + c * 64, codeMask.GetLower(), Vector256<byte>.Zero), Vector256.Load(x8 + c * 128),
            Vector256.Load(x8 + c * 128 + 64), Vector256.Load(laneScales + c * 16), TLanes.Tail(s, c, g, scaleMask).GetLower(),
            table.GetLower(), h);

    // Step on lanes 0–7 only (256-bit).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Step256<TMap>(Vector256<byte> q, Vector256<sbyte> xe, Vector256<sbyte> xo, Vector256<float> sx,
        Vector256<float> sw, Vector256<byte> table, Vector256<float> t)
        where TMap : struct, INibbleMap
    {
        var pairs = Avx2.MultiplyAddAdjacent(TMap.Low256(q, table), xe) + Avx2.MultiplyAddAdjacent(TMap.High256(q, table), xo);
        var lanes = Avx2.MultiplyAddAdjacent(pairs, Vector256<short>.One);
        return Fma.MultiplyAdd(Avx.ConvertToVector256Single(lanes) * sx, sw, t);
    }

    // The folded lane sums of four rows → [Σa, Σb, Σc, Σd]; each output depends only on its own input, in a fixed order.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Reduce4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        var abcd = Avx.HorizontalAdd(Avx.HorizontalAdd(a, b), Avx.HorizontalAdd(c, d));
        return abcd.GetLower() + abcd.GetUpper();
    }

    /// <summary>Whether the matrix has zero points.</summary>
    private interface IZeroPoints
    {
        static abstract bool Present { get; }
    }

    private struct Zeros : IZeroPoints
    {
        public static bool Present => true;
    }

    private struct NoZeros : IZeroPoints
    {
        public static bool Present => false;
    }

    /// <summary>The level bytes of the low and of the high nibbles of 64 (or 32) code bytes.</summary>
    private interface INibbleMap
    {
        static abstract Vector512<byte> Low(Vector512<byte> codes, Vector512<byte> table);

        static abstract Vector512<byte> High(Vector512<byte> codes, Vector512<byte> table);

        static abstract Vector256<byte> Low256(Vector256<byte> codes, Vector256<byte> table);

        static abstract Vector256<byte> High256(Vector256<byte> codes, Vector256<byte> table);

        /// <summary>Whether the bytes carry an offset O (level = (u − O)/F) to take off.</summary>
        static abstract bool HasOffset { get; }
    }

    /// <summary>
    /// The GF(2) affine matrix that shifts each byte right by 4 (vgf2p8affineqb: result bit i = parity of matrix byte
    /// 7 − i AND the input, so byte 7 − i selects input bit i + 4 for i &lt; 4): the high nibble in one instruction
    /// where a 16-bit shift needs a mask after it.
    /// </summary>
    private static Vector512<byte> HighNibbleMatrix => Vector512.Create(0x1020408000000000UL).AsByte();

    /// <summary>INT4: the nibble is the byte.</summary>
    private struct Nibbles : INibbleMap
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<byte> Low(Vector512<byte> codes, Vector512<byte> table) => codes & Vector512.Create((byte)15);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<byte> High(Vector512<byte> codes, Vector512<byte> table) => Gfni.V512.IsSupported
            ? Gfni.V512.GaloisFieldAffineTransform(codes, HighNibbleMatrix, 0)
            : Avx512BW.ShiftRightLogical(codes.AsUInt16(), 4).AsByte() & Vector512.Create((byte)15);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Low256(Vector256<byte> codes, Vector256<byte> table) => codes & Vector256.Create((byte)15);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> High256(Vector256<byte> codes, Vector256<byte> table) => Gfni.V256.IsSupported
            ? Gfni.V256.GaloisFieldAffineTransform(codes, HighNibbleMatrix.GetLower(), 0)
            : Avx2.ShiftRightLogical(codes.AsUInt16(), 4).AsByte() & Vector256.Create((byte)15);

        public static bool HasOffset => false;
    }

    /// <summary>
    /// A level table (E2M1). With VBMI, vpermb indexes the 64-byte table (the 16 bytes repeated) by each byte's low six
    /// bits, so the low nibble needs no mask, and the high one only a 16-bit shift (the neighbour's bits it shifts in
    /// land in bits 4–5, which the repetition ignores): three instructions where vpshufb needs five.
    /// </summary>
    private struct Lookup : INibbleMap
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<byte> Low(Vector512<byte> codes, Vector512<byte> table) => Avx512Vbmi.IsSupported
            ? Avx512Vbmi.PermuteVar64x8(table, codes)
            : Avx512BW.Shuffle(table, codes & Vector512.Create((byte)15));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<byte> High(Vector512<byte> codes, Vector512<byte> table)
        {
            var shifted = Avx512BW.ShiftRightLogical(codes.AsUInt16(), 4).AsByte();
            return Avx512Vbmi.IsSupported ? Avx512Vbmi.PermuteVar64x8(table, shifted) : Avx512BW.Shuffle(table, shifted & Vector512.Create((byte)15));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Low256(Vector256<byte> codes, Vector256<byte> table) => Avx512Vbmi.VL.IsSupported
            ? Avx512Vbmi.VL.PermuteVar32x8(table, codes)
            : Avx2.Shuffle(table, codes & Vector256.Create((byte)15));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> High256(Vector256<byte> codes, Vector256<byte> table)
        {
            var shifted = Avx2.ShiftRightLogical(codes.AsUInt16(), 4).AsByte();
            return Avx512Vbmi.VL.IsSupported ? Avx512Vbmi.VL.PermuteVar32x8(table, shifted) : Avx2.Shuffle(table, shifted & Vector256.Create((byte)15));
        }

        public static bool HasOffset => true;
    }

    /// <summary>The weight scale (or zero point) of each of a chunk's 16 lanes (lane L = columns 8L..8L+7); group: the chunk's group (Broadcast).</summary>
    private interface ILaneScales
    {
        /// <summary>A chunk whose groups all exist.</summary>
        static abstract Vector512<float> Full(float* rowScales, int chunk, int group);

        /// <summary>The partial last chunk: scales of groups past the row (scaleMask lanes off) read as zero.</summary>
        static abstract Vector512<float> Tail(float* rowScales, int chunk, int group, Vector512<float> scaleMask);
    }

    /// <summary>Groups of a multiple of 128 columns, or one per row: one scale per chunk.</summary>
    private struct Broadcast : ILaneScales
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Full(float* rowScales, int chunk, int group) => Vector512.Create(rowScales[group]);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Tail(float* rowScales, int chunk, int group, Vector512<float> scaleMask) =>
            Vector512.Create(rowScales[group]);
    }

    /// <summary>Groups of 64: lanes 0–7 and 8–15.</summary>
    private struct Halves : ILaneScales
    {
        // A constant the JIT embeds (a static readonly field was re-read from the struct's statics in the loop).
        private static Vector512<int> Spread => Vector512.Create(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Full(float* rowScales, int chunk, int group) =>
            Avx512F.PermuteVar16x32(Vector128.CreateScalar(*(double*)(rowScales + 2 * chunk)).AsSingle().ToVector256Unsafe().ToVector512Unsafe(), Spread);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Tail(float* rowScales, int chunk, int group, Vector512<float> scaleMask) =>
            Avx512F.PermuteVar16x32(Avx512F.MaskLoad(rowScales + 2 * chunk, scaleMask, Vector512<float>.Zero), Spread);
    }

    /// <summary>Groups of 32: four lanes each.</summary>
    private struct Quarters : ILaneScales
    {
        // A constant the JIT embeds (a static readonly field was re-read from the struct's statics in the loop).
        private static Vector512<int> Spread => Vector512.Create(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Full(float* rowScales, int chunk, int group) =>
            Avx512F.PermuteVar16x32(Vector128.Load(rowScales + 4 * chunk).ToVector256Unsafe().ToVector512Unsafe(), Spread);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Tail(float* rowScales, int chunk, int group, Vector512<float> scaleMask) =>
            Avx512F.PermuteVar16x32(Avx512F.MaskLoad(rowScales + 4 * chunk, scaleMask, Vector512<float>.Zero), Spread);
    }

    /// <summary>Groups of 16 (NVFP4): two lanes each.</summary>
    private struct Eighths : ILaneScales
    {
        // A constant the JIT embeds (a static readonly field was re-read from the struct's statics in the loop).
        private static Vector512<int> Spread => Vector512.Create(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Full(float* rowScales, int chunk, int group) =>
            Avx512F.PermuteVar16x32(Vector256.Load(rowScales + 8 * chunk).ToVector512Unsafe(), Spread);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Tail(float* rowScales, int chunk, int group, Vector512<float> scaleMask) =>
            Avx512F.PermuteVar16x32(Avx512F.MaskLoad(rowScales + 8 * chunk, scaleMask, Vector512<float>.Zero), Spread);
    }
}
