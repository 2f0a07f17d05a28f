using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LlmPress.Numerics.Kernels;

/// <summary>
/// Decode GEMV (one activation row) of a 4-bit <see cref="QuantizedMatrix"/> with integer inner products: the
/// activation is quantized once to int8 per 32 columns (<see cref="Int8Activation"/>) and each weight code, written
/// as a small byte u (<see cref="ByteLevels"/>: level = (u − O)/F), is multiplied by it in integers. With lane L of a
/// 128-column chunk covering its columns 8L..8L+7 (one 32-column block b, one weight group g when groups are ≥ 16):
/// <code>
///   y_r = (1/F) · Σ_chunks Σ_L sw_g · sx_b · ( Σ_{c∈L} (u_c − O)·x8_c  −  F·z_g · Σ_{c∈L} x8_c )
/// </code>
/// which is Σ_c W[r, c] · (sx_b · x8_c) exactly up to the FP32 rounding of the scale products and the final sums
/// (the integer sums are exact). Zero points come with integer levels only (F = 1, O = 0).
/// </summary>
/// <remarks>
/// Why: the FP32-activation kernel (<see cref="QuantizedGemv"/>) spends ~7 vector instructions per 32 weights
/// widening codes to floats and is instruction-bound on Zen 4 below memory bandwidth. Here 128 weights (64 bytes of
/// codes) of a row take: one load, two AND and one shift (low/high nibbles; E2M1: two vpshufb through the byte table),
/// two vpmaddubsw (u8 × s8 → pairs summed in int16), one int16 add, one vpmaddwd against ones (→ 16 int32 lanes),
/// then one convert, one multiply by the lanes' sx and one FMA with the lanes' weight scales (plus one subtraction
/// for a level offset, one FMA for zero points); the activation loads are shared by four rows. (VNNI's vpdpbusd
/// would fuse the three integer steps, but .NET 10 exposes it only as AvxVnni / Avx10v1, neither of which Zen 4
/// reports.) No overflow: u ≤ 64 and |x8| ≤ 127 keep each int16 sum of four products below 32768, and an int32 lane
/// holds eight products per chunk. Rows are independent and go through the same per-row arithmetic whether in a
/// 4-row block or alone, so results do not depend on the thread count. Groups: 16, 32, 64, any multiple of 128, or
/// one per row.
/// </remarks>
internal static unsafe class Int8DotGemv
{
    /// <summary>
    /// How far ahead of the 4-row block being read the kernel prefetches. Decode reads each matrix once, from DRAM, and
    /// this loop has enough arithmetic per cache line that the hardware prefetcher alone left it waiting on memory:
    /// 4 KiB ahead took a 2-thread INT4 decode step of the SmolLM2-135M shape from 6.9 to 5.6 ms (p50; 1, 2, 3, 5 and
    /// 8 KiB were each slower than 4, a burst prefetch at each chunk's start and fewer chunks per thread gained nothing).
    /// </summary>
    private const int PrefetchDistance = 4096;

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
        // A tail of ≤ 64 columns (≤ 32 bytes, e.g. 576 = 4·128 + 64) fills only lanes 0–7: one 256-bit step, half the work.
        bool half = tail && rowBytes - full * 64 <= 32;
        var codeMask = Vector512.LessThan(Vector512<byte>.Indices, Vector512.Create((byte)(rowBytes - full * 64))); // 0..64 bytes
        int tailGroups = groups - Math.Min(groups - 1, full * 128 / groupSize);
        var scaleMask = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(tailGroups)).AsSingle();
        sbyte* x8 = a.Codes;
        float* laneScales = a.LaneScales, laneSums = a.LaneSumsF;
        // Σ (u − O)·x8 = Σ u·x8 − O·Σ x8: the level offset comes off each lane in integers.
        int* offsets = stackalloc int[TMap.HasOffset ? a.Chunks * 16 : 0];
        if (TMap.HasOffset)
            for (int i = 0; i < a.Chunks * 16; i++) offsets[i] = map.Offset * a.LaneSums[i];
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
                float* z0 = TZeros.Present ? zeros + (nint)r * groups : null, z1 = z0 + groups, z2 = z1 + groups, z3 = z2 + groups;
                Vector512<float> t0 = default, t1 = default, t2 = default, t3 = default;
                int g = 0, inGroup = 0;
                // The 4 rows are contiguous: the window [p0 + distance, + 4 rows) is prefetched a line per row per chunk,
                // and the lines past the full chunks after the loop (none past the end of the codes).
                byte* pf = p0 + PrefetchDistance + 4 * rowBytes <= end ? p0 + PrefetchDistance : null;
                for (int c = 0; c < full; c++)
                {
                    if (pf != null)
                    {
                        byte* q = pf + c * 256;
                        Sse.Prefetch0(q);
                        Sse.Prefetch0(q + 64);
                        Sse.Prefetch0(q + 128);
                        Sse.Prefetch0(q + 192);
                    }
                    var xe = Vector512.Load(x8 + c * 128);
                    var xo = Vector512.Load(x8 + c * 128 + 64);
                    var sx = Vector512.Load(laneScales + c * 16);
                    var xs = TZeros.Present ? Vector512.Load(laneSums + c * 16) : default;
                    var off = TMap.HasOffset ? Vector512.Load(offsets + c * 16) : default;
                    t0 = Step<TMap, TZeros>(Vector512.Load(p0 + c * 64), xe, xo, sx, xs, off, TLanes.Full(s0, c, g), TZeros.Present ? TLanes.Full(z0, c, g) : default, table, t0);
                    t1 = Step<TMap, TZeros>(Vector512.Load(p1 + c * 64), xe, xo, sx, xs, off, TLanes.Full(s1, c, g), TZeros.Present ? TLanes.Full(z1, c, g) : default, table, t1);
                    t2 = Step<TMap, TZeros>(Vector512.Load(p2 + c * 64), xe, xo, sx, xs, off, TLanes.Full(s2, c, g), TZeros.Present ? TLanes.Full(z2, c, g) : default, table, t2);
                    t3 = Step<TMap, TZeros>(Vector512.Load(p3 + c * 64), xe, xo, sx, xs, off, TLanes.Full(s3, c, g), TZeros.Present ? TLanes.Full(z3, c, g) : default, table, t3);
                    if (++inGroup == chunksPerGroup)
                    {
                        inGroup = 0;
                        g++;
                    }
                }
                if (pf != null)
                    for (nint o = full * 256; o < 4 * rowBytes; o += 64) Sse.Prefetch0(pf + o);
                if (tail)
                {
                    t0 = TailStep<TMap, TZeros, TLanes>(p0, s0, z0, x8, laneScales, laneSums, offsets, full, g, half, codeMask, scaleMask, table, t0);
                    t1 = TailStep<TMap, TZeros, TLanes>(p1, s1, z1, x8, laneScales, laneSums, offsets, full, g, half, codeMask, scaleMask, table, t1);
                    t2 = TailStep<TMap, TZeros, TLanes>(p2, s2, z2, x8, laneScales, laneSums, offsets, full, g, half, codeMask, scaleMask, table, t2);
                    t3 = TailStep<TMap, TZeros, TLanes>(p3, s3, z3, x8, laneScales, laneSums, offsets, full, g, half, codeMask, scaleMask, table, t3);
                }
                (Reduce4(t0, t1, t2, t3) * inverseFactor).Store(y + r);
            }
            for (; r < r1; r++)
            {
                // The same per-row arithmetic as in a 4-row block (each output of Reduce4 depends on its own row only).
                byte* p = codes + r * rowBytes;
                float* s = scales + (nint)r * groups;
                float* z = TZeros.Present ? zeros + (nint)r * groups : null;
                Vector512<float> t = default;
                int g = 0, inGroup = 0;
                for (int c = 0; c < full; c++)
                {
                    t = Step<TMap, TZeros>(Vector512.Load(p + c * 64), Vector512.Load(x8 + c * 128), Vector512.Load(x8 + c * 128 + 64),
                        Vector512.Load(laneScales + c * 16), TZeros.Present ? Vector512.Load(laneSums + c * 16) : default,
                        TMap.HasOffset ? Vector512.Load(offsets + c * 16) : default, TLanes.Full(s, c, g),
                        TZeros.Present ? TLanes.Full(z, c, g) : default, table, t);
                    if (++inGroup == chunksPerGroup)
                    {
                        inGroup = 0;
                        g++;
                    }
                }
                if (tail) t = TailStep<TMap, TZeros, TLanes>(p, s, z, x8, laneScales, laneSums, offsets, full, g, half, codeMask, scaleMask, table, t);
                y[r] = (Reduce4(t, t, t, t) * inverseFactor).ToScalar();
            }
        }
    }

    // t + ((Σ_{8 columns of lane L} (u − O)·x8) − z_L·Σ x8) · sx_L · sw_L over the 16 lanes of one 128-column chunk.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Step<TMap, TZeros>(Vector512<byte> q, Vector512<sbyte> xe, Vector512<sbyte> xo, Vector512<float> sx,
        Vector512<float> xs, Vector512<int> offset, Vector512<float> sw, Vector512<float> z, Vector512<byte> table, Vector512<float> t)
        where TMap : struct, INibbleMap where TZeros : struct, IZeroPoints
    {
        var nibble = Vector512.Create((byte)15);
        var even = TMap.Map(q & nibble, table);
        var odd = TMap.Map(Avx512BW.ShiftRightLogical(q.AsUInt16(), 4).AsByte() & nibble, table);
        var pairs = Avx512BW.MultiplyAddAdjacent(even, xe) + Avx512BW.MultiplyAddAdjacent(odd, xo);
        var lanes = Avx512BW.MultiplyAddAdjacent(pairs, Vector512<short>.One);
        if (TMap.HasOffset) lanes -= offset;
        var f = Avx512F.ConvertToVector512Single(lanes);
        if (TZeros.Present) f = Avx512F.FusedMultiplyAddNegated(z, xs, f);
        return Avx512F.FusedMultiplyAdd(f * sx, sw, t);
    }

    // The partial last chunk c: codes past the row read as zero (the activation is zero there too), scales and zero
    // points of groups past the row as zero. A tail of ≤ 32 bytes fills lanes 0–7 only and takes one 256-bit step:
    // the same arithmetic on those lanes, the upper ones (which would add exact zeros) left as they are.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> TailStep<TMap, TZeros, TLanes>(byte* p, float* s, float* z, sbyte* x8, float* laneScales, float* laneSums,
        int* offsets, int c, int g, bool half, Vector512<byte> codeMask, Vector512<float> scaleMask, Vector512<byte> table, Vector512<float> t)
        where TMap : struct, INibbleMap where TZeros : struct, IZeroPoints where TLanes : struct, ILaneScales
    {
        var sw = TLanes.Tail(s, c, g, scaleMask);
        var zl = TZeros.Present ? TLanes.Tail(z, c, g, scaleMask) : default;
        if (half)
        {
            var lower = Step256<TMap, TZeros>(Avx512BW.VL.MaskLoad(p + c * 64, codeMask.GetLower(), Vector256<byte>.Zero),
                Vector256.Load(x8 + c * 128), Vector256.Load(x8 + c * 128 + 64), Vector256.Load(laneScales + c * 16),
                TZeros.Present ? Vector256.Load(laneSums + c * 16) : default, TMap.HasOffset ? Vector256.Load(offsets + c * 16) : default,
                sw.GetLower(), zl.GetLower(), table.GetLower(), t.GetLower());
            return Vector512.Create(lower, t.GetUpper());
        }
        return Step<TMap, TZeros>(Avx512BW.MaskLoad(p + c * 64, codeMask, Vector512<byte>.Zero), Vector512.Load(x8 + c * 128),
            Vector512.Load(x8 + c * 128 + 64), Vector512.Load(laneScales + c * 16), TZeros.Present ? Vector512.Load(laneSums + c * 16) : default,
            TMap.HasOffset ? Vector512.Load(offsets + c * 16) : default, sw, zl, table, t);
    }

    // Step on lanes 0–7 only (256-bit).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Step256<TMap, TZeros>(Vector256<byte> q, Vector256<sbyte> xe, Vector256<sbyte> xo, Vector256<float> sx,
        Vector256<float> xs, Vector256<int> offset, Vector256<float> sw, Vector256<float> z, Vector256<byte> table, Vector256<float> t)
        where TMap : struct, INibbleMap where TZeros : struct, IZeroPoints
    {
        var nibble = Vector256.Create((byte)15);
        var even = TMap.Map256(q & nibble, table);
        var odd = TMap.Map256(Avx2.ShiftRightLogical(q.AsUInt16(), 4).AsByte() & nibble, table);
        var pairs = Avx2.MultiplyAddAdjacent(even, xe) + Avx2.MultiplyAddAdjacent(odd, xo);
        var lanes = Avx2.MultiplyAddAdjacent(pairs, Vector256<short>.One);
        if (TMap.HasOffset) lanes -= offset;
        var f = Avx.ConvertToVector256Single(lanes);
        if (TZeros.Present) f = Fma.MultiplyAddNegated(z, xs, f);
        return Fma.MultiplyAdd(f * sx, sw, t);
    }

    // The lane sums of four rows → [Σa, Σb, Σc, Σd]; each output depends only on its own input, in a fixed order.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Reduce4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
    {
        var ab = Avx.HorizontalAdd(a.GetLower() + a.GetUpper(), b.GetLower() + b.GetUpper());
        var cd = Avx.HorizontalAdd(c.GetLower() + c.GetUpper(), d.GetLower() + d.GetUpper());
        var abcd = Avx.HorizontalAdd(ab, cd);
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

    /// <summary>Maps 64 nibbles (one per byte) to their level bytes.</summary>
    private interface INibbleMap
    {
        static abstract Vector512<byte> Map(Vector512<byte> nibbles, Vector512<byte> table);

        static abstract Vector256<byte> Map256(Vector256<byte> nibbles, Vector256<byte> table);

        /// <summary>Whether the bytes carry an offset O (level = (u − O)/F) to take off.</summary>
        static abstract bool HasOffset { get; }
    }

    /// <summary>INT4: the nibble is the byte.</summary>
    private struct Nibbles : INibbleMap
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<byte> Map(Vector512<byte> nibbles, Vector512<byte> table) => nibbles;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Map256(Vector256<byte> nibbles, Vector256<byte> table) => nibbles;

        public static bool HasOffset => false;
    }

    /// <summary>A level table (E2M1): one vpshufb.</summary>
    private struct Lookup : INibbleMap
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<byte> Map(Vector512<byte> nibbles, Vector512<byte> table) => Avx512BW.Shuffle(table, nibbles);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Map256(Vector256<byte> nibbles, Vector256<byte> table) => Avx2.Shuffle(table, nibbles);

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
