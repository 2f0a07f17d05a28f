using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LlmPress.Numerics.Kernels;

/// <summary>
/// A read-only GEMM operand seen as X(outer, p), where p runs along the shared K dimension and outer along M (for A)
/// or N (for B). Either outer is contiguous (X(o, p) = data[p·ld + o]) or p is (X(o, p) = data[o·ld + p]).
/// Only p-contiguous sources may be F16/BF16 (weights in the Hugging Face [out, in] layout); they are widened while packing.
/// </summary>
internal readonly unsafe struct MatrixSource
{
    public readonly void* Data;
    public readonly nint Ld;
    public readonly bool OuterContiguous;
    public readonly DType Type;

    public MatrixSource(void* data, nint ld, bool outerContiguous, DType type = DType.F32)
    {
        Data = data;
        Ld = ld;
        OuterContiguous = outerContiguous;
        Type = type;
    }

    /// <summary>op(A)[m, k] of a row-major A: outer = row i, contiguous when A is stored transposed.</summary>
    public static MatrixSource ForA(float* a, int lda, bool transposeA) => new(a, lda, outerContiguous: transposeA);

    /// <summary>op(B)[k, n] of a row-major B: outer = column j, contiguous unless B is stored transposed.</summary>
    public static MatrixSource ForB(float* b, int ldb, bool transposeB) => new(b, ldb, outerContiguous: !transposeB);

    /// <summary>
    /// Packs X(outer0 .. outer0+count, p0 .. p0+kc) into slivers of <paramref name="width"/> outer values:
    /// dst[s, p, w] = X(outer0 + s·width + w, p0 + p), zero past <paramref name="count"/>. dst: [ceil(count/width), kc, width].
    /// <paramref name="avx512"/> allows the AVX-512 transposing packers (the GEMM passes its kernel tier, so forcing
    /// a lower tier in tests also runs the portable packers); every packer produces the same bits.
    /// </summary>
    public void Pack(int outer0, int count, int p0, int kc, int width, float* dst, bool avx512)
    {
        int slivers = (count + width - 1) / width;
        for (int s = 0; s < slivers; s++)
        {
            int o = outer0 + s * width;
            int valid = Math.Min(width, count - s * width);
            float* d = dst + (nint)s * kc * width;
            if (OuterContiguous) PackOuterContiguous(o, valid, p0, kc, width, d, avx512);
            else PackInnerContiguous(o, valid, p0, kc, width, d, avx512);
        }
    }

    private void PackOuterContiguous(int o, int valid, int p0, int kc, int width, float* d, bool avx512)
    {
        float* src = (float*)Data + (nint)p0 * Ld + o;
        if (valid == width && width % 16 == 0 && avx512)
        {
            for (int p = 0; p < kc; p++, src += Ld, d += width)
                for (int w = 0; w < width; w += 16)
                    Vector512.Store(Vector512.Load(src + w), d + w);
            return;
        }
        for (int p = 0; p < kc; p++, src += Ld, d += width)
        {
            int w = 0;
            for (; w < valid; w++) d[w] = src[w];
            for (; w < width; w++) d[w] = 0;
        }
    }

    /// <summary>
    /// The common A case (row-major A, MR = 6): 16 steps of 6 rows at a time through permutes instead of
    /// element-by-element stores (attention P·V, 256×64×2048: 86 → 97 GFLOP/s). src: 6 rows of stride ld; d: [kc, 6].
    /// </summary>
    private static void PackSixRowsAvx512(float* src, nint ld, int kc, float* d)
    {
        var index = SixRowTables.Index;
        var m01 = SixRowTables.Masks01;
        var m23 = SixRowTables.Masks23;
        float* r0 = src, r1 = src + ld, r2 = src + 2 * ld, r3 = src + 3 * ld, r4 = src + 4 * ld, r5 = src + 5 * ld;
        int p = 0;
        for (; p + 16 <= kc; p += 16, d += 96)
        {
            var a0 = Vector512.Load(r0 + p);
            var a1 = Vector512.Load(r1 + p);
            var a2 = Vector512.Load(r2 + p);
            var a3 = Vector512.Load(r3 + p);
            var a4 = Vector512.Load(r4 + p);
            var a5 = Vector512.Load(r5 + p);
            for (int v = 0; v < 6; v++)
            {
                var x01 = Avx512F.PermuteVar16x32x2(a0, index[3 * v], a1);
                var x23 = Avx512F.PermuteVar16x32x2(a2, index[3 * v + 1], a3);
                var x45 = Avx512F.PermuteVar16x32x2(a4, index[3 * v + 2], a5);
                var merged = Vector512.ConditionalSelect(m01[v].AsSingle(), x01, Vector512.ConditionalSelect(m23[v].AsSingle(), x23, x45));
                merged.Store(d + 16 * v);
            }
        }
        for (; p < kc; p++, d += 6)
        {
            d[0] = r0[p]; d[1] = r1[p]; d[2] = r2[p]; d[3] = r3[p]; d[4] = r4[p]; d[5] = r5[p];
        }
    }

    private void PackInnerContiguous(int o, int valid, int p0, int kc, int width, float* d, bool avx512)
    {
        if (width == 6 && valid == 6 && Type == DType.F32 && kc >= 16 && avx512)
        {
            PackSixRowsAvx512((float*)Data + (nint)o * Ld + p0, Ld, kc, d);
            return;
        }
        if (width % 16 == 0 && kc >= 16 && avx512)
        {
            // Whole groups of 16 rows go through 16×16 register transposes; a partial last group falls through.
            int full = valid / 16 * 16;
            switch (Type)
            {
                case DType.F32: PackTransposed16<LoadF32>((byte*)Data, 4, o, full, p0, kc, width, d); break;
                case DType.BF16: PackTransposed16<LoadBF16>((byte*)Data, 2, o, full, p0, kc, width, d); break;
                case DType.F16: PackTransposed16<LoadF16>((byte*)Data, 2, o, full, p0, kc, width, d); break;
            }
            if (full == width) return;
            PackInnerContiguousScalar(o, valid, p0, kc, width, d, full);
            return;
        }
        PackInnerContiguousScalar(o, valid, p0, kc, width, d, 0);
    }

    /// <summary>
    /// Rows [o + w0, o + w0 + 16) for each w0 &lt; count (a multiple of 16), p in [p0, p0 + kc): 16 × 16 blocks are
    /// loaded (widened to FP32), transposed in registers (unpack ps → unpack pd → two 128-bit lane shuffles, 64 ops
    /// per 256 values) and stored as 16 contiguous runs, instead of stride-width scalar stores, which had made the
    /// weight GEMM pack-bound at small m (BF16 m = 64, k = 576: 60 → 103 GFLOP/s; QKᵀ 101 → 108). d: [kc, width].
    /// </summary>
    private void PackTransposed16<TLoad>(byte* data, int size, int o, int count, int p0, int kc, int width, float* d)
        where TLoad : struct, IWeightLoad
    {
        nint rowBytes = Ld * size;
        int kc16 = kc / 16 * 16;
        for (int w0 = 0; w0 < count; w0 += 16)
        {
            byte* r = data + (nint)(o + w0) * rowBytes;
            float* dst = d + w0;
            for (int p = 0; p < kc16; p += 16)
            {
                nint q = p0 + p;
                var r0 = TLoad.Load16(r, q); var r1 = TLoad.Load16(r + rowBytes, q);
                var r2 = TLoad.Load16(r + 2 * rowBytes, q); var r3 = TLoad.Load16(r + 3 * rowBytes, q);
                var r4 = TLoad.Load16(r + 4 * rowBytes, q); var r5 = TLoad.Load16(r + 5 * rowBytes, q);
                var r6 = TLoad.Load16(r + 6 * rowBytes, q); var r7 = TLoad.Load16(r + 7 * rowBytes, q);
                var r8 = TLoad.Load16(r + 8 * rowBytes, q); var r9 = TLoad.Load16(r + 9 * rowBytes, q);
                var r10 = TLoad.Load16(r + 10 * rowBytes, q); var r11 = TLoad.Load16(r + 11 * rowBytes, q);
                var r12 = TLoad.Load16(r + 12 * rowBytes, q); var r13 = TLoad.Load16(r + 13 * rowBytes, q);
                var r14 = TLoad.Load16(r + 14 * rowBytes, q); var r15 = TLoad.Load16(r + 15 * rowBytes, q);
                // 32-bit interleave of row pairs (within 128-bit lanes).
                var t0 = Avx512F.UnpackLow(r0, r1); var t1 = Avx512F.UnpackHigh(r0, r1);
                var t2 = Avx512F.UnpackLow(r2, r3); var t3 = Avx512F.UnpackHigh(r2, r3);
                var t4 = Avx512F.UnpackLow(r4, r5); var t5 = Avx512F.UnpackHigh(r4, r5);
                var t6 = Avx512F.UnpackLow(r6, r7); var t7 = Avx512F.UnpackHigh(r6, r7);
                var t8 = Avx512F.UnpackLow(r8, r9); var t9 = Avx512F.UnpackHigh(r8, r9);
                var t10 = Avx512F.UnpackLow(r10, r11); var t11 = Avx512F.UnpackHigh(r10, r11);
                var t12 = Avx512F.UnpackLow(r12, r13); var t13 = Avx512F.UnpackHigh(r12, r13);
                var t14 = Avx512F.UnpackLow(r14, r15); var t15 = Avx512F.UnpackHigh(r14, r15);
                // 64-bit interleave: uX holds 4 rows at steps (j, j+4, j+8, j+12), one step per 128-bit lane.
                var u0 = Lo64(t0, t2); var u1 = Hi64(t0, t2); var u2 = Lo64(t1, t3); var u3 = Hi64(t1, t3);
                var u4 = Lo64(t4, t6); var u5 = Hi64(t4, t6); var u6 = Lo64(t5, t7); var u7 = Hi64(t5, t7);
                var u8 = Lo64(t8, t10); var u9 = Hi64(t8, t10); var u10 = Lo64(t9, t11); var u11 = Hi64(t9, t11);
                var u12 = Lo64(t12, t14); var u13 = Hi64(t12, t14); var u14 = Lo64(t13, t15); var u15 = Hi64(t13, t15);
                float* out0 = dst + (nint)p * width;
                Finish(u0, u4, u8, u12, out0, width, 0);
                Finish(u1, u5, u9, u13, out0, width, 1);
                Finish(u2, u6, u10, u14, out0, width, 2);
                Finish(u3, u7, u11, u15, out0, width, 3);
            }
            for (int row = 0; row < 16; row++)
            {
                byte* rr = r + row * rowBytes;
                for (int p = kc16; p < kc; p++) dst[(nint)p * width + row] = TLoad.Load1(rr, p0 + p);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Lo64(Vector512<float> a, Vector512<float> b) => Avx512F.UnpackLow(a.AsDouble(), b.AsDouble()).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Hi64(Vector512<float> a, Vector512<float> b) => Avx512F.UnpackHigh(a.AsDouble(), b.AsDouble()).AsSingle();

    /// <summary>
    /// a, b, c, e: rows 0–3, 4–7, 8–11, 12–15, each with steps (j, j+4, j+8, j+12) in its four 128-bit lanes;
    /// writes the 16 rows of steps j, j+4, j+8, j+12 to out[step·width .. +16).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> e, float* out0, int width, int j)
    {
        var v0 = Avx512F.Shuffle4x128(a, b, 0x88); // steps j, j+8 of rows 0–3 | j, j+8 of rows 4–7
        var v1 = Avx512F.Shuffle4x128(a, b, 0xDD); // steps j+4, j+12
        var v2 = Avx512F.Shuffle4x128(c, e, 0x88);
        var v3 = Avx512F.Shuffle4x128(c, e, 0xDD);
        Avx512F.Shuffle4x128(v0, v2, 0x88).Store(out0 + (nint)j * width);
        Avx512F.Shuffle4x128(v0, v2, 0xDD).Store(out0 + (nint)(j + 8) * width);
        Avx512F.Shuffle4x128(v1, v3, 0x88).Store(out0 + (nint)(j + 4) * width);
        Avx512F.Shuffle4x128(v1, v3, 0xDD).Store(out0 + (nint)(j + 12) * width);
    }

    private void PackInnerContiguousScalar(int o, int valid, int p0, int kc, int width, float* d, int firstRow)
    {
        // Row w of the sliver is contiguous in p; it lands in column w of the [kc, width] sliver (stride-width stores).
        float* converted = Type == DType.F32 ? null : ScratchBuffer.Get(ScratchBuffer.Convert, kc);
        for (int w = firstRow; w < valid; w++)
        {
            float* row;
            if (Type == DType.F32)
            {
                row = (float*)Data + (nint)(o + w) * Ld + p0;
            }
            else
            {
                WeightRows.Widen(Type, (byte*)Data, (nint)(o + w) * Ld + p0, kc, converted);
                row = converted;
            }
            float* col = d + w;
            int p = 0;
            for (; p + 4 <= kc; p += 4)
            {
                col[(nint)p * width] = row[p];
                col[(nint)(p + 1) * width] = row[p + 1];
                col[(nint)(p + 2) * width] = row[p + 2];
                col[(nint)(p + 3) * width] = row[p + 3];
            }
            for (; p < kc; p++) col[(nint)p * width] = row[p];
        }
        for (int w = valid; w < width; w++)
            for (int p = 0; p < kc; p++) d[(nint)p * width + w] = 0;
    }
}

/// <summary>
/// Index/mask tables for interleaving 6 rows × 16 values into [16, 6] with two-source permutes: output vector v
/// (flat positions 16v .. 16v + 15, position f holding row f % 6 at step f / 6) takes rows 0–1, 2–3 and 4–5 from one
/// vpermt2ps each and merges them with two blends.
/// </summary>
internal static class SixRowTables
{
    public static readonly Vector512<int>[] Index = Build(out Masks01, out Masks23);
    public static readonly Vector512<int>[] Masks01;
    public static readonly Vector512<int>[] Masks23;

    private static Vector512<int>[] Build(out Vector512<int>[] masks01, out Vector512<int>[] masks23)
    {
        var index = new Vector512<int>[18];
        masks01 = new Vector512<int>[6];
        masks23 = new Vector512<int>[6];
        Span<int> tmp = stackalloc int[16];
        Span<int> m01 = stackalloc int[16];
        Span<int> m23 = stackalloc int[16];
        for (int v = 0; v < 6; v++)
        {
            for (int pair = 0; pair < 3; pair++)
            {
                for (int l = 0; l < 16; l++)
                {
                    int f = 16 * v + l, row = f % 6, step = f / 6;
                    tmp[l] = row / 2 == pair ? (row % 2) * 16 + step : 0;
                }
                index[3 * v + pair] = Vector512.Create((ReadOnlySpan<int>)tmp);
            }
            for (int l = 0; l < 16; l++)
            {
                int row = (16 * v + l) % 6;
                m01[l] = row < 2 ? -1 : 0;
                m23[l] = row is 2 or 3 ? -1 : 0;
            }
            masks01[v] = Vector512.Create((ReadOnlySpan<int>)m01);
            masks23[v] = Vector512.Create((ReadOnlySpan<int>)m23);
        }
        return index;
    }
}

/// <summary>Vectorised widening of F16/BF16/F32 runs to FP32.</summary>
internal static unsafe class WeightRows
{
    /// <summary>dst[0 .. count) = FP32 of elements [start, start + count) of a <paramref name="type"/> array at <paramref name="data"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Widen(DType type, byte* data, nint start, int count, float* dst)
    {
        switch (type)
        {
            case DType.F32:
                Buffer.MemoryCopy((float*)data + start, dst, (long)count * 4, (long)count * 4);
                break;
            case DType.BF16:
                FloatConversion.BFloat16ToSingle(new ReadOnlySpan<ushort>((ushort*)data + start, count), new Span<float>(dst, count));
                break;
            case DType.F16:
                System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)data + start, count), new Span<float>(dst, count));
                break;
            default:
                ThrowHelper.ThrowUnsupportedWeightType(type);
                break;
        }
    }
}
