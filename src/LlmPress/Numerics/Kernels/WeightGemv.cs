using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LlmPress.Numerics.Kernels;

/// <summary>Loads weight elements of one stored type as FP32 (the conversion is fused into the GEMV's stream).</summary>
internal unsafe interface IWeightLoad
{
    /// <summary>Bytes per element.</summary>
    static abstract int Size { get; }

    /// <summary>Elements [p, p + 16) of the row at <paramref name="row"/>, widened.</summary>
    static abstract Vector512<float> Load16(byte* row, nint p);
    static abstract float Load1(byte* row, nint p);
}

internal readonly unsafe struct LoadF32 : IWeightLoad
{
    public static int Size => sizeof(float);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(byte* row, nint p) => Vector512.Load((float*)row + p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load1(byte* row, nint p) => ((float*)row)[p];
}

/// <summary>BF16 is the top half of FP32: zero-extend to 32 bits and shift left 16.</summary>
internal readonly unsafe struct LoadBF16 : IWeightLoad
{
    public static int Size => sizeof(ushort);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(byte* row, nint p)
        => Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512UInt32(Vector256.Load((ushort*)row + p)), 16).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load1(byte* row, nint p) => BitConverter.UInt32BitsToSingle((uint)((ushort*)row)[p] << 16);
}

/// <summary>
/// IEEE half → FP32 without F16C intrinsics (.NET exposes none for zmm): put the 15 exponent+mantissa bits at
/// float position (≪ 13) and multiply by 2^112 to re-bias (exact, and right for subnormals too); exponent 31
/// (Inf/NaN) maps to 255; then OR the sign back in.
/// </summary>
internal readonly unsafe struct LoadF16 : IWeightLoad
{
    public static int Size => sizeof(ushort);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(byte* row, nint p)
    {
        var u = Avx512F.ConvertToVector512UInt32(Vector256.Load((ushort*)row + p));
        var em = u & Vector512.Create(0x7FFFu);
        var shifted = Avx512F.ShiftLeftLogical(em, 13);
        var finite = shifted.AsSingle() * Vector512.Create(0x77800000u).AsSingle() /* 2^112 */;
        var special = (shifted | Vector512.Create(0x7F800000u)).AsSingle();
        var isSpecial = Vector512.GreaterThanOrEqual(em, Vector512.Create(0x7C00u)).AsSingle();
        var magnitude = Vector512.ConditionalSelect(isSpecial, special, finite);
        return (magnitude.AsUInt32() | Avx512F.ShiftLeftLogical(u & Vector512.Create(0x8000u), 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load1(byte* row, nint p) => (float)((Half*)row)[p];
}

/// <summary>
/// Weight GEMV for decode and small batches (see Gemm.GemvMaxRows): c[m, n] = a[m, k] · w[n, k]ᵀ, streaming each weight row once and widening it
/// on the fly. Blocks of 4 weight rows × up to 4 activation rows (16 zmm accumulators); with m &gt; 4 the later
/// groups re-read the 4 rows from L1. Each output is one 16-lane FMA chain over k, then a fixed-order lane sum and
/// a scalar tail: the same arithmetic whichever thread runs it.
/// </summary>
internal static unsafe class WeightGemv
{
    /// <summary>Rows [row0, row1) of w (a multiple-of-4 start) into columns [row0, row1) of c.</summary>
    public static void Avx512Rows(DType type, byte* w, int k, int row0, int row1, float* a, int m, float* c, nint ldc, bool accumulate)
    {
        switch (type)
        {
            case DType.F32: Rows<LoadF32>(w, 4, k, row0, row1, a, m, c, ldc, accumulate); break;
            case DType.BF16: Rows<LoadBF16>(w, 2, k, row0, row1, a, m, c, ldc, accumulate); break;
            case DType.F16: Rows<LoadF16>(w, 2, k, row0, row1, a, m, c, ldc, accumulate); break;
            default: ThrowHelper.ThrowUnsupportedWeightType(type); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows<TLoad>(byte* w, int size, int k, int row0, int row1, float* a, int m, float* c, nint ldc, bool accumulate)
        where TLoad : struct, IWeightLoad
    {
        nint ldw = (nint)k * size;
        int j = row0;
        // Several row streams at once defeat the hardware prefetcher on one core (measured 8.5 GB/s single-threaded
        // on the 56 MB LM head vs ~20 GB/s for a plain sequential sum), so while working on a block the kernel
        // prefetches the block PrefetchBlocks ahead: 4 rows are contiguous, and it covers them evenly over the k loop.
        // Into L2 (prefetcht1), not L1: on this Zen a standalone copy of this loop streamed the 56 MB LM head at
        // 19–22 GB/s with the L1 hint against 24–26 with the L2 one (2 threads, caches flushed, 3 runs each), and BF16
        // decode steps took ~20% less time (decode-tps p10 10.7–12.3 → 8.2–9.6 ms, interleaved with the L1 build).
        // Further ahead (6 blocks) was no better here; the int8-dot kernel, with more work per byte, gains from 16 KiB.
        const int PrefetchBlocks = 2;
        nint blockBytes = 4 * ldw;
        nint step = k >= 16 ? blockBytes / (k / 16) : 0;
        for (; j + 4 <= row1; j += 4)
        {
            byte* wj = w + j * ldw;
            byte* pf = j + 4 * (PrefetchBlocks + 1) <= row1 && step >= 64 ? wj + PrefetchBlocks * blockBytes : null;
            for (int i = 0; i < m; i += 4)
            {
                float* ai = a + (nint)i * k;
                float* ci = c + i * ldc + j;
                switch (Math.Min(4, m - i))
                {
                    case 1: Rows4M1<TLoad>(wj, ldw, k, ai, k, ci, ldc, accumulate, pf, step); break;
                    case 2: Rows4M2<TLoad>(wj, ldw, k, ai, k, ci, ldc, accumulate, pf, step); break;
                    case 3: Rows4M3<TLoad>(wj, ldw, k, ai, k, ci, ldc, accumulate, pf, step); break;
                    default: Rows4M4<TLoad>(wj, ldw, k, ai, k, ci, ldc, accumulate, pf, step); break;
                }
                pf = null; // later activation groups re-read the block from L1
            }
        }
        for (; j < row1; j++)
        {
            byte* wj = w + j * ldw;
            for (int i = 0; i < m; i++)
            {
                float* ai = a + (nint)i * k;
                var s = Vector512<float>.Zero;
                nint p = 0;
                for (; p + 16 <= k; p += 16) s = Avx512F.FusedMultiplyAdd(Vector512.Load(ai + p), TLoad.Load16(wj, p), s);
                float t = Vector512.Sum(s);
                for (; p < k; p++) t = MathF.FusedMultiplyAdd(ai[p], TLoad.Load1(wj, p), t);
                float* dst = c + i * ldc + j;
                *dst = accumulate ? *dst + t : t;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put(float* c, float t0, float t1, float t2, float t3, bool accumulate)
    {
        if (accumulate)
        {
            c[0] += t0; c[1] += t1; c[2] += t2; c[3] += t3;
        }
        else
        {
            c[0] = t0; c[1] = t1; c[2] = t2; c[3] = t3;
        }
    }

    /// <summary>Prefetches (into L2) one 16-column step of the 4-row block ahead: prefetchStep is 128 bytes for 16-bit weights, 256 for FP32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte* PrefetchStep(byte* prefetch, nint prefetchStep)
    {
        Sse.Prefetch1(prefetch);
        Sse.Prefetch1(prefetch + 64);
        if (prefetchStep > 128)
        {
            Sse.Prefetch1(prefetch + 128);
            Sse.Prefetch1(prefetch + 192);
        }
        return prefetch + prefetchStep;
    }

    // Fully optimized at once, like Rows (which does not inline it): as Tier0 code, the first ~1 s of BF16 decode ran at
    // half speed (decode-tps, first 64-token run: 38–42 → 68–74 tokens/s).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows4M1<TLoad>(byte* w, nint ldwBytes, int k, float* a, nint lda, float* c, nint ldc, bool accumulate, byte* prefetch, nint prefetchStep)
        where TLoad : struct, IWeightLoad
    {
        // w: 4 rows of [k] elements, a: [1, lda], c: [1, ldc] (4 columns written)
        byte* w0 = w, w1 = w + ldwBytes, w2 = w + 2 * ldwBytes, w3 = w + 3 * ldwBytes;
        Vector512<float> s00 = default, s01 = default, s02 = default, s03 = default;
        nint p = 0;
        for (; p + 16 <= k; p += 16)
        {
            var v0 = TLoad.Load16(w0, p); var v1 = TLoad.Load16(w1, p); var v2 = TLoad.Load16(w2, p); var v3 = TLoad.Load16(w3, p);
            if (prefetch != null) prefetch = PrefetchStep(prefetch, prefetchStep);
            var a0 = Vector512.Load(a + 0 * lda + p);
            s00 = Avx512F.FusedMultiplyAdd(a0, v0, s00); s01 = Avx512F.FusedMultiplyAdd(a0, v1, s01); s02 = Avx512F.FusedMultiplyAdd(a0, v2, s02); s03 = Avx512F.FusedMultiplyAdd(a0, v3, s03);
        }
        float t00 = Vector512.Sum(s00);
        float t01 = Vector512.Sum(s01);
        float t02 = Vector512.Sum(s02);
        float t03 = Vector512.Sum(s03);
        for (; p < k; p++)
        {
            float u0 = TLoad.Load1(w0, p), u1 = TLoad.Load1(w1, p), u2 = TLoad.Load1(w2, p), u3 = TLoad.Load1(w3, p);
            float x0 = a[0 * lda + p];
            t00 = MathF.FusedMultiplyAdd(x0, u0, t00); t01 = MathF.FusedMultiplyAdd(x0, u1, t01); t02 = MathF.FusedMultiplyAdd(x0, u2, t02); t03 = MathF.FusedMultiplyAdd(x0, u3, t03);
        }
        Put(c + 0 * ldc, t00, t01, t02, t03, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows4M2<TLoad>(byte* w, nint ldwBytes, int k, float* a, nint lda, float* c, nint ldc, bool accumulate, byte* prefetch, nint prefetchStep)
        where TLoad : struct, IWeightLoad
    {
        // w: 4 rows of [k] elements, a: [2, lda], c: [2, ldc] (4 columns written)
        byte* w0 = w, w1 = w + ldwBytes, w2 = w + 2 * ldwBytes, w3 = w + 3 * ldwBytes;
        Vector512<float> s00 = default, s01 = default, s02 = default, s03 = default, s10 = default, s11 = default, s12 = default, s13 = default;
        nint p = 0;
        for (; p + 16 <= k; p += 16)
        {
            var v0 = TLoad.Load16(w0, p); var v1 = TLoad.Load16(w1, p); var v2 = TLoad.Load16(w2, p); var v3 = TLoad.Load16(w3, p);
            if (prefetch != null) prefetch = PrefetchStep(prefetch, prefetchStep);
            var a0 = Vector512.Load(a + 0 * lda + p);
            s00 = Avx512F.FusedMultiplyAdd(a0, v0, s00); s01 = Avx512F.FusedMultiplyAdd(a0, v1, s01); s02 = Avx512F.FusedMultiplyAdd(a0, v2, s02); s03 = Avx512F.FusedMultiplyAdd(a0, v3, s03);
            var a1 = Vector512.Load(a + 1 * lda + p);
            s10 = Avx512F.FusedMultiplyAdd(a1, v0, s10); s11 = Avx512F.FusedMultiplyAdd(a1, v1, s11); s12 = Avx512F.FusedMultiplyAdd(a1, v2, s12); s13 = Avx512F.FusedMultiplyAdd(a1, v3, s13);
        }
        float t00 = Vector512.Sum(s00);
        float t01 = Vector512.Sum(s01);
        float t02 = Vector512.Sum(s02);
        float t03 = Vector512.Sum(s03);
        float t10 = Vector512.Sum(s10);
        float t11 = Vector512.Sum(s11);
        float t12 = Vector512.Sum(s12);
        float t13 = Vector512.Sum(s13);
        for (; p < k; p++)
        {
            float u0 = TLoad.Load1(w0, p), u1 = TLoad.Load1(w1, p), u2 = TLoad.Load1(w2, p), u3 = TLoad.Load1(w3, p);
            float x0 = a[0 * lda + p];
            t00 = MathF.FusedMultiplyAdd(x0, u0, t00); t01 = MathF.FusedMultiplyAdd(x0, u1, t01); t02 = MathF.FusedMultiplyAdd(x0, u2, t02); t03 = MathF.FusedMultiplyAdd(x0, u3, t03);
            float x1 = a[1 * lda + p];
            t10 = MathF.FusedMultiplyAdd(x1, u0, t10); t11 = MathF.FusedMultiplyAdd(x1, u1, t11); t12 = MathF.FusedMultiplyAdd(x1, u2, t12); t13 = MathF.FusedMultiplyAdd(x1, u3, t13);
        }
        Put(c + 0 * ldc, t00, t01, t02, t03, accumulate);
        Put(c + 1 * ldc, t10, t11, t12, t13, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows4M3<TLoad>(byte* w, nint ldwBytes, int k, float* a, nint lda, float* c, nint ldc, bool accumulate, byte* prefetch, nint prefetchStep)
        where TLoad : struct, IWeightLoad
    {
        // w: 4 rows of [k] elements, a: [3, lda], c: [3, ldc] (4 columns written)
        byte* w0 = w, w1 = w + ldwBytes, w2 = w + 2 * ldwBytes, w3 = w + 3 * ldwBytes;
        Vector512<float> s00 = default, s01 = default, s02 = default, s03 = default, s10 = default, s11 = default, s12 = default, s13 = default, s20 = default, s21 = default, s22 = default, s23 = default;
        nint p = 0;
        for (; p + 16 <= k; p += 16)
        {
            var v0 = TLoad.Load16(w0, p); var v1 = TLoad.Load16(w1, p); var v2 = TLoad.Load16(w2, p); var v3 = TLoad.Load16(w3, p);
            if (prefetch != null) prefetch = PrefetchStep(prefetch, prefetchStep);
            var a0 = Vector512.Load(a + 0 * lda + p);
            s00 = Avx512F.FusedMultiplyAdd(a0, v0, s00); s01 = Avx512F.FusedMultiplyAdd(a0, v1, s01); s02 = Avx512F.FusedMultiplyAdd(a0, v2, s02); s03 = Avx512F.FusedMultiplyAdd(a0, v3, s03);
            var a1 = Vector512.Load(a + 1 * lda + p);
            s10 = Avx512F.FusedMultiplyAdd(a1, v0, s10); s11 = Avx512F.FusedMultiplyAdd(a1, v1, s11); s12 = Avx512F.FusedMultiplyAdd(a1, v2, s12); s13 = Avx512F.FusedMultiplyAdd(a1, v3, s13);
            var a2 = Vector512.Load(a + 2 * lda + p);
            s20 = Avx512F.FusedMultiplyAdd(a2, v0, s20); s21 = Avx512F.FusedMultiplyAdd(a2, v1, s21); s22 = Avx512F.FusedMultiplyAdd(a2, v2, s22); s23 = Avx512F.FusedMultiplyAdd(a2, v3, s23);
        }
        float t00 = Vector512.Sum(s00);
        float t01 = Vector512.Sum(s01);
        float t02 = Vector512.Sum(s02);
        float t03 = Vector512.Sum(s03);
        float t10 = Vector512.Sum(s10);
        float t11 = Vector512.Sum(s11);
        float t12 = Vector512.Sum(s12);
        float t13 = Vector512.Sum(s13);
        float t20 = Vector512.Sum(s20);
        float t21 = Vector512.Sum(s21);
        float t22 = Vector512.Sum(s22);
        float t23 = Vector512.Sum(s23);
        for (; p < k; p++)
        {
            float u0 = TLoad.Load1(w0, p), u1 = TLoad.Load1(w1, p), u2 = TLoad.Load1(w2, p), u3 = TLoad.Load1(w3, p);
            float x0 = a[0 * lda + p];
            t00 = MathF.FusedMultiplyAdd(x0, u0, t00); t01 = MathF.FusedMultiplyAdd(x0, u1, t01); t02 = MathF.FusedMultiplyAdd(x0, u2, t02); t03 = MathF.FusedMultiplyAdd(x0, u3, t03);
            float x1 = a[1 * lda + p];
            t10 = MathF.FusedMultiplyAdd(x1, u0, t10); t11 = MathF.FusedMultiplyAdd(x1, u1, t11); t12 = MathF.FusedMultiplyAdd(x1, u2, t12); t13 = MathF.FusedMultiplyAdd(x1, u3, t13);
            float x2 = a[2 * lda + p];
            t20 = MathF.FusedMultiplyAdd(x2, u0, t20); t21 = MathF.FusedMultiplyAdd(x2, u1, t21); t22 = MathF.FusedMultiplyAdd(x2, u2, t22); t23 = MathF.FusedMultiplyAdd(x2, u3, t23);
        }
        Put(c + 0 * ldc, t00, t01, t02, t03, accumulate);
        Put(c + 1 * ldc, t10, t11, t12, t13, accumulate);
        Put(c + 2 * ldc, t20, t21, t22, t23, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows4M4<TLoad>(byte* w, nint ldwBytes, int k, float* a, nint lda, float* c, nint ldc, bool accumulate, byte* prefetch, nint prefetchStep)
        where TLoad : struct, IWeightLoad
    {
        // w: 4 rows of [k] elements, a: [4, lda], c: [4, ldc] (4 columns written)
        byte* w0 = w, w1 = w + ldwBytes, w2 = w + 2 * ldwBytes, w3 = w + 3 * ldwBytes;
        Vector512<float> s00 = default, s01 = default, s02 = default, s03 = default, s10 = default, s11 = default, s12 = default, s13 = default, s20 = default, s21 = default, s22 = default, s23 = default, s30 = default, s31 = default, s32 = default, s33 = default;
        nint p = 0;
        for (; p + 16 <= k; p += 16)
        {
            var v0 = TLoad.Load16(w0, p); var v1 = TLoad.Load16(w1, p); var v2 = TLoad.Load16(w2, p); var v3 = TLoad.Load16(w3, p);
            if (prefetch != null) prefetch = PrefetchStep(prefetch, prefetchStep);
            var a0 = Vector512.Load(a + 0 * lda + p);
            s00 = Avx512F.FusedMultiplyAdd(a0, v0, s00); s01 = Avx512F.FusedMultiplyAdd(a0, v1, s01); s02 = Avx512F.FusedMultiplyAdd(a0, v2, s02); s03 = Avx512F.FusedMultiplyAdd(a0, v3, s03);
            var a1 = Vector512.Load(a + 1 * lda + p);
            s10 = Avx512F.FusedMultiplyAdd(a1, v0, s10); s11 = Avx512F.FusedMultiplyAdd(a1, v1, s11); s12 = Avx512F.FusedMultiplyAdd(a1, v2, s12); s13 = Avx512F.FusedMultiplyAdd(a1, v3, s13);
            var a2 = Vector512.Load(a + 2 * lda + p);
            s20 = Avx512F.FusedMultiplyAdd(a2, v0, s20); s21 = Avx512F.FusedMultiplyAdd(a2, v1, s21); s22 = Avx512F.FusedMultiplyAdd(a2, v2, s22); s23 = Avx512F.FusedMultiplyAdd(a2, v3, s23);
            var a3 = Vector512.Load(a + 3 * lda + p);
            s30 = Avx512F.FusedMultiplyAdd(a3, v0, s30); s31 = Avx512F.FusedMultiplyAdd(a3, v1, s31); s32 = Avx512F.FusedMultiplyAdd(a3, v2, s32); s33 = Avx512F.FusedMultiplyAdd(a3, v3, s33);
        }
        float t00 = Vector512.Sum(s00);
        float t01 = Vector512.Sum(s01);
        float t02 = Vector512.Sum(s02);
        float t03 = Vector512.Sum(s03);
        float t10 = Vector512.Sum(s10);
        float t11 = Vector512.Sum(s11);
        float t12 = Vector512.Sum(s12);
        float t13 = Vector512.Sum(s13);
        float t20 = Vector512.Sum(s20);
        float t21 = Vector512.Sum(s21);
        float t22 = Vector512.Sum(s22);
        float t23 = Vector512.Sum(s23);
        float t30 = Vector512.Sum(s30);
        float t31 = Vector512.Sum(s31);
        float t32 = Vector512.Sum(s32);
        float t33 = Vector512.Sum(s33);
        for (; p < k; p++)
        {
            float u0 = TLoad.Load1(w0, p), u1 = TLoad.Load1(w1, p), u2 = TLoad.Load1(w2, p), u3 = TLoad.Load1(w3, p);
            float x0 = a[0 * lda + p];
            t00 = MathF.FusedMultiplyAdd(x0, u0, t00); t01 = MathF.FusedMultiplyAdd(x0, u1, t01); t02 = MathF.FusedMultiplyAdd(x0, u2, t02); t03 = MathF.FusedMultiplyAdd(x0, u3, t03);
            float x1 = a[1 * lda + p];
            t10 = MathF.FusedMultiplyAdd(x1, u0, t10); t11 = MathF.FusedMultiplyAdd(x1, u1, t11); t12 = MathF.FusedMultiplyAdd(x1, u2, t12); t13 = MathF.FusedMultiplyAdd(x1, u3, t13);
            float x2 = a[2 * lda + p];
            t20 = MathF.FusedMultiplyAdd(x2, u0, t20); t21 = MathF.FusedMultiplyAdd(x2, u1, t21); t22 = MathF.FusedMultiplyAdd(x2, u2, t22); t23 = MathF.FusedMultiplyAdd(x2, u3, t23);
            float x3 = a[3 * lda + p];
            t30 = MathF.FusedMultiplyAdd(x3, u0, t30); t31 = MathF.FusedMultiplyAdd(x3, u1, t31); t32 = MathF.FusedMultiplyAdd(x3, u2, t32); t33 = MathF.FusedMultiplyAdd(x3, u3, t33);
        }
        Put(c + 0 * ldc, t00, t01, t02, t03, accumulate);
        Put(c + 1 * ldc, t10, t11, t12, t13, accumulate);
        Put(c + 2 * ldc, t20, t21, t22, t23, accumulate);
        Put(c + 3 * ldc, t30, t31, t32, t33, accumulate);
    }

    /// <summary>Portable path (AVX2/scalar tiers): widen one row into scratch, then one dot per activation row.</summary>
    public static void PortableRows(DType type, byte* w, int k, int row0, int row1, float* a, int m, float* c, nint ldc, bool accumulate)
    {
        float* row = ScratchBuffer.Get(ScratchBuffer.Convert, k);
        var rowSpan = new ReadOnlySpan<float>(row, k);
        for (int j = row0; j < row1; j++)
        {
            WeightRows.Widen(type, w, (nint)j * k, k, row);
            for (int i = 0; i < m; i++)
            {
                float t = System.Numerics.Tensors.TensorPrimitives.Dot(new ReadOnlySpan<float>(a + (nint)i * k, k), rowSpan);
                float* dst = c + i * ldc + j;
                *dst = accumulate ? *dst + t : t;
            }
        }
    }
}
