using System.Buffers;
using LlmPress.Numerics;

namespace LlmPress.Quantization;

/// <summary>How an FP4 format chooses and decodes its one-byte group scale (MXFP4: E8M0; NVFP4: E4M3 / global).</summary>
internal interface IFp4ScaleRule
{
    byte ComputeScale(ReadOnlySpan<float> x, ScaleSearch search, bool vectorized);
    float EffectiveScale(byte code);
}

/// <summary>
/// The shared matrix code of MXFP4 and NVFP4: qweight U8 [rows, ceil(cols/2)] (two E2M1 codes per byte, element 2j
/// low nibble) and scales U8 [rows, ceil(cols/g)], one scale code per group of g; the last group of a row may be
/// short (it behaves as if zero-padded: zeros change neither amax nor the error sum, and are never stored or read).
/// </summary>
internal static class Fp4Planes
{
    public static (byte[] QWeight, byte[] Scales) Quantize<TRule>(ReadOnlySpan<float> stored, int rows, int cols, int groupSize,
        TRule rule, ScaleSearch search, bool fast)
        where TRule : struct, IFp4ScaleRule
    {
        int rowBytes = (cols + 1) / 2;
        int groups = (cols + groupSize - 1) / groupSize;
        var qweight = new byte[(long)rows * rowBytes];
        var scales = new byte[(long)rows * groups];
        RowParallel.For(stored, rows, (matrix, first, count) =>
        {
            byte[] codes = ArrayPool<byte>.Shared.Rent(cols);
            try
            {
                for (int r = first; r < first + count; r++)
                {
                    var row = matrix.Slice(r * cols, cols);
                    for (int g = 0; g < groups; g++)
                    {
                        int start = g * groupSize;
                        var x = row.Slice(start, Math.Min(groupSize, cols - start));
                        byte scale = rule.ComputeScale(x, search, fast);
                        scales[(long)r * groups + g] = scale;
                        Fp4Group.Quantize(x, rule.EffectiveScale(scale), fast, codes.AsSpan(start, x.Length));
                    }
                    Fp4E2M1.Pack(codes.AsSpan(0, cols), qweight.AsSpan(r * rowBytes, rowBytes));
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(codes);
            }
        }, parallel: fast);
        return (qweight, scales);
    }

    // -> result: [rows, cols]
    public static void Dequantize<TRule>(byte[] qweight, byte[] scales, int rows, int cols, int groupSize, TRule rule, float[] result)
        where TRule : struct, IFp4ScaleRule
    {
        int rowBytes = (cols + 1) / 2;
        int groups = (cols + groupSize - 1) / groupSize;
        Parallel.For(0, rows, Parallelism.Options, r =>
        {
            var packed = qweight.AsSpan(r * rowBytes, rowBytes);
            var dst = result.AsSpan(r * cols, cols);
            for (int g = 0; g < groups; g++)
            {
                float s = rule.EffectiveScale(scales[(long)r * groups + g]);
                int end = Math.Min(cols, (g + 1) * groupSize);
                for (int c = g * groupSize; c < end; c++) dst[c] = Fp4E2M1.Decode(packed[c >> 1] >> ((c & 1) * 4)) * s;
            }
        });
    }

    public static TensorLayout[] Layout(int rows, int cols, int groupSize) =>
    [
        new TensorLayout("qweight", DType.U8, [rows, (cols + 1) / 2]),
        new TensorLayout("scales", DType.U8, [rows, (cols + groupSize - 1) / groupSize]),
    ];
}
