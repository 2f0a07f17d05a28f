using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LlmPress.Numerics.Kernels;

/// <summary>
/// One activation row x[k] quantized to int8 per 32-column block for <see cref="Int8DotGemv"/> (llama.cpp's Q8
/// activation scheme): sx_b = max|x_b| / 127, x8_c = round_to_even(x_c · (127 / max|x_b|)), so x_c ≈ sx_b · x8_c with
/// |error| ≤ sx_b / 2. Laid out for the 4-bit kernel: per 128-column chunk, the 64 even columns then the 64 odd ones
/// (byte j of a chunk of codes holds columns 2j and 2j + 1), zero past k.
/// </summary>
/// <remarks>
/// A block holding NaN or ±∞ gets sx_b = NaN, so the products it feeds are NaN as in FP32. A block whose max|x| is
/// below 2⁻¹⁰⁰ (127 / max|x| would overflow for the smallest of them) is taken as zero: it changes a product by less
/// than 2⁻¹⁰⁰ · Σ|w|. Buffers are per thread and reused: no allocation per call once grown.
/// </remarks>
internal sealed unsafe class Int8Activation
{
    /// <summary>Blocks whose max|x| is below this are taken as zero (2⁻¹⁰⁰).</summary>
    internal const float TinyBlock = 7.888609E-31f;

    [ThreadStatic] private static Int8Activation? t_current;

    private sbyte[] _codes = [];
    private float[] _laneScales = [], _blockScales = [];
    private float[] _halfBlockSums = [];

    /// <summary>Columns quantized.</summary>
    public int Cols { get; private set; }
    /// <summary>128-column chunks, the last one possibly partial (zero-padded).</summary>
    public int Chunks { get; private set; }
    /// <summary>32-column blocks (the last one possibly partial).</summary>
    public int Blocks { get; private set; }

    /// <summary>[Chunks, 128]: per chunk the int8 values of its even columns then its odd columns.</summary>
    public sbyte* Codes { get; private set; }
    /// <summary>[Chunks, 16]: lane L of chunk c ↦ sx of block 4c + L/4 (the kernel's int32 lane L sums columns 8L..8L+7).</summary>
    public float* LaneScales { get; private set; }
    /// <summary>[Blocks]: sx_b.</summary>
    public float* BlockScales { get; private set; }
    /// <summary>
    /// [Chunks · 8]: sx_b · Σ x8 over each 16-column half block h (columns 16h..16h+15, b = h/2; the integer sum is
    /// exact, the product rounded once): what a weight group's level offset or zero point multiplies.
    /// </summary>
    public float* HalfBlockSums { get; private set; }

    /// <summary>This thread's instance holding x[k] quantized (valid until this thread's next call).</summary>
    public static Int8Activation Quantize(float* x, int k)
    {
        var a = t_current ??= new Int8Activation();
        a.Fill(x, k);
        return a;
    }

    private void Fill(float* x, int k)
    {
        int chunks = (k + 127) / 128, blocks = (k + 31) / 32;
        if (_codes.Length < chunks * 128)
        {
            _codes = GC.AllocateArray<sbyte>(chunks * 128, pinned: true);
            _laneScales = GC.AllocateArray<float>(chunks * 16, pinned: true);
            _blockScales = GC.AllocateArray<float>(chunks * 4, pinned: true);
            _halfBlockSums = GC.AllocateArray<float>(chunks * 8, pinned: true);
        }
        Cols = k;
        Chunks = chunks;
        Blocks = blocks;
        Codes = (sbyte*)Unsafe.AsPointer(ref _codes[0]);
        LaneScales = (float*)Unsafe.AsPointer(ref _laneScales[0]);
        BlockScales = (float*)Unsafe.AsPointer(ref _blockScales[0]);
        HalfBlockSums = (float*)Unsafe.AsPointer(ref _halfBlockSums[0]);

        // natural: one chunk's 128 int8 values in column order, before the even/odd split.
        sbyte* natural = stackalloc sbyte[128];
        float* padded = stackalloc float[32];
        for (int c = 0; c < chunks; c++)
        {
            if (128 * (c + 1) <= k && TryFillWholeChunk(x + 128 * c, c, natural)) continue;
            for (int j = 0; j < 4; j++)
            {
                int b = 4 * c + j, col = 32 * b;
                if (b >= blocks)
                {
                    new Span<sbyte>(natural + 32 * j, 32).Clear();
                    continue;
                }
                float* src = x + col;
                if (col + 32 > k)
                {
                    // The partial last block: zero-padded (a zero changes neither max|x| nor the sums).
                    new Span<float>(padded, 32).Clear();
                    new ReadOnlySpan<float>(src, k - col).CopyTo(new Span<float>(padded, 32));
                    src = padded;
                }
                BlockScales[b] = QuantizeBlock(src, natural + 32 * j);
            }
            SplitEvenOdd(natural, Codes + 128 * c);
            for (int lane = 0; lane < 16; lane++)
            {
                int b = 4 * c + lane / 4;
                LaneScales[16 * c + lane] = b < blocks ? BlockScales[b] : 0f;
            }
            for (int half = 0; half < 8; half++)
            {
                int b = 4 * c + half / 2, sum = 0;
                for (int i = 0; i < 16; i++) sum += natural[16 * half + i];
                HalfBlockSums[8 * c + half] = b < blocks ? BlockScales[b] * sum : 0f;
            }
        }
    }

    /// <summary>
    /// Chunk c from x[128] (all inside the row; natural: a 128-byte scratch) when its four blocks are finite and none
    /// is tiny: the same values as the per-block path (the same products and roundings, the sums exact in integers),
    /// with the four blocks' reductions, divisions and sums done side by side instead of one block at a time. False
    /// (nothing written) otherwise.
    /// </summary>
    /// <remarks>
    /// Why: quantizing runs on the calling thread before each decode GEMV, while the other threads wait; one block at a
    /// time it took ~0.9 µs for 576 columns, ~0.25–0.37 µs this way (bench int8-shapes).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryFillWholeChunk(float* x, int c, sbyte* natural)
    {
        var v0 = Vector512.Load(x); var v1 = Vector512.Load(x + 16);
        var v2 = Vector512.Load(x + 32); var v3 = Vector512.Load(x + 48);
        var v4 = Vector512.Load(x + 64); var v5 = Vector512.Load(x + 80);
        var v6 = Vector512.Load(x + 96); var v7 = Vector512.Load(x + 112);
        // v·0 is 0 for finite v and NaN for NaN and ±∞.
        var nonFinite = (v0 * 0f + v1 * 0f) + (v2 * 0f + v3 * 0f) + (v4 * 0f + v5 * 0f) + (v6 * 0f + v7 * 0f);
        if (!Vector512.EqualsAll(nonFinite, nonFinite)) return false;
        // amax[j] = max|x| over block j, in lanes 0–3.
        var amax = Max4(BlockMax(v0, v1), BlockMax(v2, v3), BlockMax(v4, v5), BlockMax(v6, v7));
        if (!Vector128.GreaterThanOrEqualAll(amax, Vector128.Create(TinyBlock))) return false;
        var inverse = Vector128.Create(127f) / amax;
        var scale = amax / Vector128.Create(127f);
        // vcvtps2dq rounds to nearest even (the default MXCSR mode), as the per-block path does; |x · inverse| ≤ 127.
        var i0 = Vector512.Create(inverse.GetElement(0)); var i1 = Vector512.Create(inverse.GetElement(1));
        var i2 = Vector512.Create(inverse.GetElement(2)); var i3 = Vector512.Create(inverse.GetElement(3));
        var q0 = Avx512F.ConvertToVector512Int32(v0 * i0); var q1 = Avx512F.ConvertToVector512Int32(v1 * i0);
        var q2 = Avx512F.ConvertToVector512Int32(v2 * i1); var q3 = Avx512F.ConvertToVector512Int32(v3 * i1);
        var q4 = Avx512F.ConvertToVector512Int32(v4 * i2); var q5 = Avx512F.ConvertToVector512Int32(v5 * i2);
        var q6 = Avx512F.ConvertToVector512Int32(v6 * i3); var q7 = Avx512F.ConvertToVector512Int32(v7 * i3);
        Avx512F.ConvertToVector128SByte(q0).Store(natural); Avx512F.ConvertToVector128SByte(q1).Store(natural + 16);
        Avx512F.ConvertToVector128SByte(q2).Store(natural + 32); Avx512F.ConvertToVector128SByte(q3).Store(natural + 48);
        Avx512F.ConvertToVector128SByte(q4).Store(natural + 64); Avx512F.ConvertToVector128SByte(q5).Store(natural + 80);
        Avx512F.ConvertToVector128SByte(q6).Store(natural + 96); Avx512F.ConvertToVector128SByte(q7).Store(natural + 112);
        SplitEvenOdd(natural, Codes + 128 * c);
        scale.Store(BlockScales + 4 * c);
        var wide = scale.ToVector256Unsafe().ToVector512Unsafe();
        Avx512F.PermuteVar16x32(wide, Vector512.Create(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)).Store(LaneScales + 16 * c);
        // Half block h is q_h (16 columns): its integer sum, times its block's scale.
        var sums = Sum8(q0, q1, q2, q3, q4, q5, q6, q7);
        var halfScales = Avx2.PermuteVar8x32(scale.ToVector256Unsafe(), Vector256.Create(0, 0, 1, 1, 2, 2, 3, 3));
        (Avx.ConvertToVector256Single(sums) * halfScales).Store(HalfBlockSums + 8 * c);
        return true;
    }

    // max(|a|, |b|) folded to 4 lanes (the block's max is the max of those 4).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> BlockMax(Vector512<float> a, Vector512<float> b)
    {
        var m = Avx512F.Max(Vector512.Abs(a), Vector512.Abs(b));
        var m8 = Avx.Max(m.GetLower(), m.GetUpper());
        return Sse.Max(m8.GetLower(), m8.GetUpper());
    }

    // [max of a, max of b, max of c, max of d] from four 4-lane vectors (a 4×4 transpose, then lane-wise max).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Max4(Vector128<float> a, Vector128<float> b, Vector128<float> c, Vector128<float> d)
    {
        var ab0 = Sse.UnpackLow(a, b);   // a0 b0 a1 b1
        var ab1 = Sse.UnpackHigh(a, b);  // a2 b2 a3 b3
        var cd0 = Sse.UnpackLow(c, d);
        var cd1 = Sse.UnpackHigh(c, d);
        var r0 = Sse.MoveLowToHigh(ab0, cd0);   // a0 b0 c0 d0
        var r1 = Sse.MoveHighToLow(cd0, ab0);   // a1 b1 c1 d1
        var r2 = Sse.MoveLowToHigh(ab1, cd1);   // a2 b2 c2 d2
        var r3 = Sse.MoveHighToLow(cd1, ab1);   // a3 b3 c3 d3
        return Sse.Max(Sse.Max(r0, r1), Sse.Max(r2, r3));
    }

    // [Σa, Σb, …, Σh] over the 16 lanes of each (exact: |values| ≤ 127).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Sum8(Vector512<int> a, Vector512<int> b, Vector512<int> c, Vector512<int> d,
        Vector512<int> e, Vector512<int> f, Vector512<int> g, Vector512<int> h)
    {
        static Vector256<int> Fold(Vector512<int> v) => v.GetLower() + v.GetUpper();
        var ab = Avx2.HorizontalAdd(Fold(a), Fold(b));
        var cd = Avx2.HorizontalAdd(Fold(c), Fold(d));
        var ef = Avx2.HorizontalAdd(Fold(e), Fold(f));
        var gh = Avx2.HorizontalAdd(Fold(g), Fold(h));
        var abcd = Avx2.HorizontalAdd(ab, cd); // per 128-bit half: [a, b, c, d] partial sums
        var efgh = Avx2.HorizontalAdd(ef, gh);
        return Vector256.Create(abcd.GetLower() + abcd.GetUpper(), efgh.GetLower() + efgh.GetUpper());
    }

    // 32 floats → 32 int8 (column order); returns their scale.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float QuantizeBlock(float* src, sbyte* dst)
    {
        var v0 = Vector512.Load(src);
        var v1 = Vector512.Load(src + 16);
        // vmaxps returns its second operand when either is NaN, so NaN is detected apart: finite · 0 = 0, NaN/∞ · 0 = NaN.
        float amax = MaxAcross(Avx512F.Max(Vector512.Abs(v0), Vector512.Abs(v1)));
        bool bad = float.IsNaN(Vector512.Sum(v0 * 0f + v1 * 0f));
        if (bad || !(amax >= TinyBlock))
        {
            new Span<sbyte>(dst, 32).Clear();
            return bad ? float.NaN : 0f;
        }
        float inverse = 127f / amax;
        // vcvtps2dq rounds to nearest even (the default MXCSR mode), as MathF.Round does; |x · inverse| ≤ 127.
        var q0 = Avx512F.ConvertToVector512Int32(v0 * inverse);
        var q1 = Avx512F.ConvertToVector512Int32(v1 * inverse);
        Avx512F.ConvertToVector128SByte(q0).Store(dst);
        Avx512F.ConvertToVector128SByte(q1).Store(dst + 16);
        return amax / 127f;
    }

    /// <summary>The largest of v's 16 lanes (no NaN expected).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float MaxAcross(Vector512<float> v)
    {
        var m8 = Avx.Max(v.GetLower(), v.GetUpper());
        var m4 = Sse.Max(m8.GetLower(), m8.GetUpper());
        var m2 = Sse.Max(m4, Sse.MoveHighToLow(m4, m4));
        return MathF.Max(m2.ToScalar(), m2.GetElement(1));
    }

    private static readonly Vector512<byte> s_even = Vector512.Create(
        (byte)0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62,
        64, 66, 68, 70, 72, 74, 76, 78, 80, 82, 84, 86, 88, 90, 92, 94, 96, 98, 100, 102, 104, 106, 108, 110, 112, 114, 116, 118, 120, 122, 124, 126);

    // [128] column order → [64 even columns, 64 odd columns]. Inlined: called per chunk, and as a call it started at Tier0.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SplitEvenOdd(sbyte* natural, sbyte* dst)
    {
        if (Avx512Vbmi.IsSupported)
        {
            var a = Vector512.Load((byte*)natural);
            var b = Vector512.Load((byte*)natural + 64);
            Avx512Vbmi.PermuteVar64x8x2(a, s_even, b).Store((byte*)dst);
            Avx512Vbmi.PermuteVar64x8x2(a, s_even + Vector512<byte>.One, b).Store((byte*)dst + 64);
            return;
        }
        for (int j = 0; j < 64; j++)
        {
            dst[j] = natural[2 * j];
            dst[64 + j] = natural[2 * j + 1];
        }
    }
}
