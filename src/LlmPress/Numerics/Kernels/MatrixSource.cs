using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

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

    private void PackInnerContiguous(int o, int valid, int p0, int kc, int width, float* d)
    {
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
