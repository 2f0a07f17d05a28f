using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LlmPress.Numerics.Kernels;

/// <summary>
/// Decode GEMV (one activation row) of a 4-bit <see cref="QuantizedMatrix"/> with integer inner products: the
/// activation is quantized once to int8 per 32 columns (<see cref="Int8Activation"/>) and each weight code, written
/// as a small byte u (<see cref="ByteLevels"/>: level = (u − O)/F), is multiplied by it in integers:
/// <code>
///   y_r = (1/F) · [ Σ_b sw_g(b) · sx_b · Σ_{c∈b} u_c · x8_c  −  Σ_g sw_g · (O + F·z_g) · Σ_{b∈g} sx_b · Σ_{c∈b} x8_c ]
/// </code>
/// which is Σ_c W[r, c] · (sx_b · x8_c) exactly up to the FP32 rounding of the scale products and the final sums.
/// </summary>
/// <remarks>
/// Why: the FP32-activation kernel (<see cref="QuantizedGemv"/>) spends ~7 vector instructions per 32 weights
/// widening codes to floats and is instruction-bound on Zen 4 below memory bandwidth. Here 128 weights (64 bytes of
/// codes) take: one load, two AND, one shift (low/high nibbles), two vpmaddubsw (u8 × s8 → pairs summed in int16), one
/// int16 add, one vpmaddwd against ones (→ 16 int32 lanes, lane L = columns 8L..8L+7 of the chunk), then one convert,
/// one multiply by the lanes' sx and one FMA with the lanes' weight scales. (VNNI's vpdpbusd would fuse the three
/// integer steps, but .NET 10 exposes it only as AvxVnni / Avx10v1, neither of which Zen 4 reports.)
/// No overflow: u ≤ 64 and |x8| ≤ 127 keep each int16 sum of four products below 32768, and an int32 lane holds
/// eight products per chunk. Rows are independent and go through the same per-row arithmetic whether in a 4-row block
/// or alone, so results do not depend on the thread count. Groups: 16, 32, 64, any multiple of 128, or one per row.
/// </remarks>
internal static unsafe class Int8DotGemv
{
    /// <summary>True when this CPU runs the kernel (AVX-512 BW).</summary>
    public static bool IsSupported => Avx512BW.IsSupported && Avx512F.VL.IsSupported;

    /// <summary>True when <paramref name="w"/>'s format and grouping fit the kernel.</summary>
    public static bool Applies(QuantizedMatrix w) =>
        w.Bits == 4 && w.ByteLevels is not null && (w.Groups == 1 || w.GroupSize % 128 == 0 || w.GroupSize is 16 or 32 or 64);

    /// <summary>y[r] for rows [r0, r1) (y: [W.Rows]) from the activation quantized by <see cref="Int8Activation.Quantize"/>.</summary>
    public static void Rows(QuantizedMatrix w, Int8Activation a, float* y, int r0, int r1)
    {
        if (a.Cols != w.Cols) throw new ArgumentException($"The activation has {a.Cols} columns, the matrix {w.Cols}.", nameof(a));
        if (w.ByteLevels!.IsIdentity) Rows<Nibbles>(w, a, y, r0, r1);
        else Rows<Lookup>(w, a, y, r0, r1);
    }

    private static void Rows<TMap>(QuantizedMatrix w, Int8Activation a, float* y, int r0, int r1) where TMap : struct, INibbleMap
    {
        if (w.Groups == 1 || w.GroupSize % 128 == 0) Run<TMap, Broadcast>(w, a, y, r0, r1);
        else if (w.GroupSize == 64) Run<TMap, Halves>(w, a, y, r0, r1);
        else if (w.GroupSize == 32) Run<TMap, Quarters>(w, a, y, r0, r1);
        else Run<TMap, Eighths>(w, a, y, r0, r1);
    }

    private static void Run<TMap, TLanes>(QuantizedMatrix w, Int8Activation a, float* y, int r0, int r1)
        where TMap : struct, INibbleMap where TLanes : struct, ILaneScales
    {
        int k = w.Cols, groups = w.Groups, groupSize = w.GroupSize, full = k / 128;
        nint rowBytes = w.RowBytes;
        var map = w.ByteLevels!;
        var table = map.Table;
        float factor = map.Factor, offset = map.Offset, inverseFactor = 1f / map.Factor;
        int chunksPerGroup = groups == 1 ? int.MaxValue : Math.Max(1, groupSize / 128); // Broadcast only
        // The partial last chunk: its codes and (masked lane modes) its groups' scales are read with masks.
        bool tail = full < a.Chunks;
        var codeMask = Vector512.LessThan(Vector512<byte>.Indices, Vector512.Create((byte)Math.Min(63, rowBytes - full * 64)));
        int tailGroups = groups - Math.Min(groups - 1, full * 128 / groupSize);
        var scaleMask = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(tailGroups)).AsSingle();
        float* groupSums = stackalloc float[groups];
        a.GroupSums(groupSize, groups, groupSums);
        sbyte* x8 = a.Codes;
        float* laneScales = a.LaneScales;
        fixed (byte* codes = w.Codes)
        fixed (float* scales = w.Scales, zeros = w.Zeros)
        {
            int r = r0;
            for (; r + 4 <= r1; r += 4)
            {
                byte* p0 = codes + r * rowBytes, p1 = p0 + rowBytes, p2 = p1 + rowBytes, p3 = p2 + rowBytes;
                float* s0 = scales + (nint)r * groups, s1 = s0 + groups, s2 = s1 + groups, s3 = s2 + groups;
                Vector512<float> t0 = default, t1 = default, t2 = default, t3 = default;
                for (int c = 0; c < full; c++)
                {
                    var xe = Vector512.Load(x8 + c * 128);
                    var xo = Vector512.Load(x8 + c * 128 + 64);
                    var sx = Vector512.Load(laneScales + c * 16);
                    t0 = Step<TMap>(Vector512.Load(p0 + c * 64), xe, xo, sx, TLanes.Full(s0, c, chunksPerGroup), table, t0);
                    t1 = Step<TMap>(Vector512.Load(p1 + c * 64), xe, xo, sx, TLanes.Full(s1, c, chunksPerGroup), table, t1);
                    t2 = Step<TMap>(Vector512.Load(p2 + c * 64), xe, xo, sx, TLanes.Full(s2, c, chunksPerGroup), table, t2);
                    t3 = Step<TMap>(Vector512.Load(p3 + c * 64), xe, xo, sx, TLanes.Full(s3, c, chunksPerGroup), table, t3);
                }
                if (tail)
                {
                    t0 = TailStep<TMap, TLanes>(p0, s0, x8, laneScales, full, chunksPerGroup, codeMask, scaleMask, table, t0);
                    t1 = TailStep<TMap, TLanes>(p1, s1, x8, laneScales, full, chunksPerGroup, codeMask, scaleMask, table, t1);
                    t2 = TailStep<TMap, TLanes>(p2, s2, x8, laneScales, full, chunksPerGroup, codeMask, scaleMask, table, t2);
                    t3 = TailStep<TMap, TLanes>(p3, s3, x8, laneScales, full, chunksPerGroup, codeMask, scaleMask, table, t3);
                }
                float* z0 = zeros == null ? null : zeros + (nint)r * groups;
                y[r] = Finish(t0, s0, z0, groupSums, groups, factor, offset, inverseFactor);
                y[r + 1] = Finish(t1, s1, z0 == null ? null : z0 + groups, groupSums, groups, factor, offset, inverseFactor);
                y[r + 2] = Finish(t2, s2, z0 == null ? null : z0 + 2 * groups, groupSums, groups, factor, offset, inverseFactor);
                y[r + 3] = Finish(t3, s3, z0 == null ? null : z0 + 3 * groups, groupSums, groups, factor, offset, inverseFactor);
            }
            for (; r < r1; r++)
            {
                byte* p = codes + r * rowBytes;
                float* s = scales + (nint)r * groups;
                Vector512<float> t = default;
                for (int c = 0; c < full; c++)
                    t = Step<TMap>(Vector512.Load(p + c * 64), Vector512.Load(x8 + c * 128), Vector512.Load(x8 + c * 128 + 64),
                        Vector512.Load(laneScales + c * 16), TLanes.Full(s, c, chunksPerGroup), table, t);
                if (tail) t = TailStep<TMap, TLanes>(p, s, x8, laneScales, full, chunksPerGroup, codeMask, scaleMask, table, t);
                y[r] = Finish(t, s, zeros == null ? null : zeros + (nint)r * groups, groupSums, groups, factor, offset, inverseFactor);
            }
        }
    }

    // t + (Σ_{8 columns of lane L} u·x8) · sx_L · sw_L over the 16 lanes of one 128-column chunk.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Step<TMap>(Vector512<byte> q, Vector512<sbyte> xe, Vector512<sbyte> xo, Vector512<float> sx,
        Vector512<float> sw, Vector512<byte> table, Vector512<float> t) where TMap : struct, INibbleMap
    {
        var nibble = Vector512.Create((byte)15);
        var even = TMap.Map(q & nibble, table);
        var odd = TMap.Map(Avx512BW.ShiftRightLogical(q.AsUInt16(), 4).AsByte() & nibble, table);
        var pairs = Avx512BW.MultiplyAddAdjacent(even, xe) + Avx512BW.MultiplyAddAdjacent(odd, xo);
        var lanes = Avx512BW.MultiplyAddAdjacent(pairs, Vector512<short>.One);
        return Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(lanes) * sx, sw, t);
    }

    // The partial last chunk: codes past the row read as zero (the activation is zero there too), scales past the row as zero.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> TailStep<TMap, TLanes>(byte* rowCodes, float* rowScales, sbyte* x8, float* laneScales, int c,
        int chunksPerGroup, Vector512<byte> codeMask, Vector512<float> scaleMask, Vector512<byte> table, Vector512<float> t)
        where TMap : struct, INibbleMap where TLanes : struct, ILaneScales
    {
        var q = Avx512BW.MaskLoad(rowCodes + c * 64, codeMask, Vector512<byte>.Zero);
        return Step<TMap>(q, Vector512.Load(x8 + c * 128), Vector512.Load(x8 + c * 128 + 64), Vector512.Load(laneScales + c * 16),
            TLanes.Tail(rowScales, c, chunksPerGroup, scaleMask), table, t);
    }

    // (1/F) · (Σ lanes − Σ_g sw_g · (O + F·z_g) · groupSums_g).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Finish(Vector512<float> t, float* s, float* z, float* groupSums, int groups, float factor, float offset, float inverseFactor)
    {
        float correction = 0f;
        if (z != null || offset != 0f)
        {
            var acc = Vector512<float>.Zero;
            int g = 0;
            if (z != null)
            {
                for (; g + 16 <= groups; g += 16)
                    acc = Avx512F.FusedMultiplyAdd(Vector512.Load(s + g) * Avx512F.FusedMultiplyAdd(Vector512.Create(factor), Vector512.Load(z + g),
                        Vector512.Create(offset)), Vector512.Load(groupSums + g), acc);
                correction = Vector512.Sum(acc);
                for (; g < groups; g++) correction += s[g] * (offset + factor * z[g]) * groupSums[g];
            }
            else
            {
                for (; g + 16 <= groups; g += 16) acc = Avx512F.FusedMultiplyAdd(Vector512.Load(s + g), Vector512.Load(groupSums + g), acc);
                correction = Vector512.Sum(acc);
                for (; g < groups; g++) correction += s[g] * groupSums[g];
                correction *= offset;
            }
        }
        return inverseFactor * (Vector512.Sum(t) - correction);
    }

    /// <summary>Maps 64 nibbles (one per byte) to their level bytes.</summary>
    private interface INibbleMap
    {
        static abstract Vector512<byte> Map(Vector512<byte> nibbles, Vector512<byte> table);
    }

    /// <summary>INT4: the nibble is the byte.</summary>
    private struct Nibbles : INibbleMap
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<byte> Map(Vector512<byte> nibbles, Vector512<byte> table) => nibbles;
    }

    /// <summary>A level table (E2M1): one vpshufb.</summary>
    private struct Lookup : INibbleMap
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<byte> Map(Vector512<byte> nibbles, Vector512<byte> table) => Avx512BW.Shuffle(table, nibbles);
    }

    /// <summary>The weight scale of each of a chunk's 16 lanes (lane L = columns 8L..8L+7).</summary>
    private interface ILaneScales
    {
        /// <summary>A chunk whose groups all exist.</summary>
        static abstract Vector512<float> Full(float* rowScales, int chunk, int chunksPerGroup);

        /// <summary>The partial last chunk: scales of groups past the row (scaleMask lanes off) read as zero.</summary>
        static abstract Vector512<float> Tail(float* rowScales, int chunk, int chunksPerGroup, Vector512<float> scaleMask);
    }

    /// <summary>Groups of a multiple of 128 columns, or one per row: one scale per chunk.</summary>
    private struct Broadcast : ILaneScales
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Full(float* rowScales, int chunk, int chunksPerGroup) => Vector512.Create(rowScales[chunk / chunksPerGroup]);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Tail(float* rowScales, int chunk, int chunksPerGroup, Vector512<float> scaleMask) =>
            Vector512.Create(rowScales[chunk / chunksPerGroup]);
    }

    /// <summary>Groups of 64: lanes 0–7 and 8–15.</summary>
    private struct Halves : ILaneScales
    {
        private static readonly Vector512<int> s_spread = Vector512.Create(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Full(float* rowScales, int chunk, int chunksPerGroup) =>
            Avx512F.PermuteVar16x32(Vector128.CreateScalar(*(double*)(rowScales + 2 * chunk)).AsSingle().ToVector256Unsafe().ToVector512Unsafe(), s_spread);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Tail(float* rowScales, int chunk, int chunksPerGroup, Vector512<float> scaleMask) =>
            Avx512F.PermuteVar16x32(Avx512F.MaskLoad(rowScales + 2 * chunk, scaleMask, Vector512<float>.Zero), s_spread);
    }

    /// <summary>Groups of 32: four lanes each.</summary>
    private struct Quarters : ILaneScales
    {
        private static readonly Vector512<int> s_spread = Vector512.Create(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Full(float* rowScales, int chunk, int chunksPerGroup) =>
            Avx512F.PermuteVar16x32(Vector128.Load(rowScales + 4 * chunk).ToVector256Unsafe().ToVector512Unsafe(), s_spread);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Tail(float* rowScales, int chunk, int chunksPerGroup, Vector512<float> scaleMask) =>
            Avx512F.PermuteVar16x32(Avx512F.MaskLoad(rowScales + 4 * chunk, scaleMask, Vector512<float>.Zero), s_spread);
    }

    /// <summary>Groups of 16 (NVFP4): two lanes each.</summary>
    private struct Eighths : ILaneScales
    {
        private static readonly Vector512<int> s_spread = Vector512.Create(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Full(float* rowScales, int chunk, int chunksPerGroup) =>
            Avx512F.PermuteVar16x32(Vector256.Load(rowScales + 8 * chunk).ToVector512Unsafe(), s_spread);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Tail(float* rowScales, int chunk, int chunksPerGroup, Vector512<float> scaleMask) =>
            Avx512F.PermuteVar16x32(Avx512F.MaskLoad(rowScales + 8 * chunk, scaleMask, Vector512<float>.Zero), s_spread);
    }
}
