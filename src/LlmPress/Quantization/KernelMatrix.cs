using System.Runtime.InteropServices;
using LlmPress.Numerics;

namespace LlmPress.Quantization;

/// <summary>
/// Turns a <see cref="PackedWeight"/> into the form the packed kernels multiply (<see cref="QuantizedMatrix"/>):
/// INT4 and INT8 (any symmetry; groups that align with the kernels' 32/16-column chunks), MXFP4 and NVFP4. The codes
/// are shared, not copied; scales and zero points are decoded once to FP32 per group. Every value the kernels see is
/// exactly <see cref="PackedWeight.DequantizeStored"/>'s (the same scale · (level − zero) in FP32).
/// </summary>
public static class KernelMatrix
{
    /// <summary>The kernel form in the stored (rotated, padded) basis, or null for formats and groupings the kernels do not take (INT2/3, HIGGS).</summary>
    public static QuantizedMatrix? TryCreate(PackedWeight weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        var format = weight.Format;
        int rows = weight.Rows, cols = weight.StoredColumns, groups = weight.GroupCount, groupSize = weight.GroupSize;
        int bits = format.Kind switch
        {
            QuantKind.Int when format.Bits is 4 or 8 => format.Bits,
            QuantKind.Mxfp4 or QuantKind.Nvfp4 => 4,
            _ => 0,
        };
        if (bits == 0 || !QuantizedMatrix.IsSupportedGrouping(bits, cols, groupSize)) return null;

        var scales = new float[(long)rows * groups];
        float[]? zeros = null;
        float[]? levels = null;
        switch (format.Kind)
        {
            case QuantKind.Int:
                zeros = new float[scales.Length];
                for (int r = 0; r < rows; r++)
                    for (int g = 0; g < groups; g++)
                    {
                        scales[r * groups + g] = weight.GetScale(r, g);
                        zeros[r * groups + g] = weight.GetZero(r, g);
                    }
                if (bits == 4) levels = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
                break;
            default: // E2M1 codes; GetScale decodes E8M0, or E4M3 ÷ the global scale, exactly as dequantization does
                for (int r = 0; r < rows; r++)
                    for (int g = 0; g < groups; g++) scales[r * groups + g] = weight.GetScale(r, g);
                levels = Fp4E2M1.Values.ToArray();
                break;
        }
        return new QuantizedMatrix(rows, cols, bits, groupSize, weight.GetTensor("qweight").Data, levels, scales, zeros);
    }
}
