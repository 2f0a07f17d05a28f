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
    /// </summary>
    public void Pack(int outer0, int count, int p0, int kc, int width, float* dst)
    {
        int slivers = (count + width - 1) / width;
        for (int s = 0; s < slivers; s++)
        {
            int o = outer0 + s * width;
            int valid = Math.Min(width, count - s * width);
            float* d = dst + (nint)s * kc * width;
            if (OuterContiguous) PackOuterContiguous(o, valid, p0, kc, width, d);
            else PackInnerContiguous(o, valid, p0, kc, width, d);
        }
    }

    private void PackOuterContiguous(int o, int valid, int p0, int kc, int width, float* d)
    {
        float* src = (float*)Data + (nint)p0 * Ld + o;
        if (valid == width && width % 16 == 0 && Vector512.IsHardwareAccelerated)
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
    /// The common A case (row-major A, MR = 6): 16 steps of 6 rows at a time through permutes, ~3× faster than
    /// element-by-element stores. src: 6 rows of stride ld; d: [kc, 6].
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

    private void PackInnerContiguous(int o, int valid, int p0, int kc, int width, float* d)
    {
        if (width == 6 && valid == 6 && Type == DType.F32 && kc >= 16 && Avx512F.IsSupported)
        {
            PackSixRowsAvx512((float*)Data + (nint)o * Ld + p0, Ld, kc, d);
            return;
        }
        // Row w of the sliver is contiguous in p; it lands in column w of the [kc, width] sliver (stride-width stores).
        float* converted = Type == DType.F32 ? null : ScratchBuffer.Get(ScratchBuffer.Convert, kc);
        for (int w = 0; w < valid; w++)
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
