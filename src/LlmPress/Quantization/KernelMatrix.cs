using System.Runtime.InteropServices;
using LlmPress.Numerics;
using LlmPress.Numerics.Kernels;

namespace LlmPress.Quantization;

/// <summary>
/// Turns a <see cref="PackedWeight"/> into the form the packed kernels multiply (<see cref="QuantizedMatrix"/>):
/// INT4 and INT8 (any symmetry; groups that align with the kernels' 32/16-column chunks), MXFP4 and NVFP4. The codes
/// are shared, not copied; INT scales and zero points are decoded once to FP32 per group, MXFP4/NVFP4 scale bytes are
/// shared too (with a 256-entry table of their FP32 values). Every value the kernels see is
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

        byte[] codes = weight.GetTensor("qweight").Data;
        if (format.Kind is QuantKind.Mxfp4 or QuantKind.Nvfp4)
        {
            // E2M1 codes; the scales stay one byte per group (as FP32 they were a third of an NVFP4 matrix), shared with
            // the checkpoint like the codes, with each code's FP32 value decoded exactly as dequantization does.
            // E8M0 decodes as E8M0.Decode; E4M3 ÷ the global scale as Nvfp4Format.EffectiveScale (ScaleCodesTests checks both).
            var stored = weight.GetTensor("scales");
            if (stored.Shape.Length != 2 || stored.Shape[0] != rows || stored.Shape[1] < groups) return null;
            byte[] scaleCodes = stored.Shape[1] == groups ? stored.Data : CopyScaleCodes(stored.Data, (int)stored.Shape[1], rows, groups);
            return format.Kind == QuantKind.Mxfp4
                ? new QuantizedMatrix(rows, cols, 4, groupSize, codes, Fp4E2M1.Values.ToArray(), scaleCodes, ScaleCoding.E8M0)
                : new QuantizedMatrix(rows, cols, 4, groupSize, codes, Fp4E2M1.Values.ToArray(), scaleCodes, ScaleCoding.E4M3, weight.GlobalScale);
        }

        // INT: FP16 scales and integer zero points to FP32 per group.
        var scales = new float[(long)rows * groups];
        var zeros = new float[scales.Length];
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < groups; g++)
            {
                scales[r * groups + g] = weight.GetScale(r, g);
                zeros[r * groups + g] = weight.GetZero(r, g);
            }
        float[]? levels = bits == 4 ? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] : null;
        return new QuantizedMatrix(rows, cols, bits, groupSize, codes, levels, scales, zeros);
    }

    /// <summary>The scale codes as [rows, groups] when the stored tensor has more than one byte per row's groups.</summary>
    private static byte[] CopyScaleCodes(byte[] stored, int perRow, int rows, int groups)
    {
        var codes = new byte[(long)rows * groups];
        for (int r = 0; r < rows; r++) stored.AsSpan(r * perRow, groups).CopyTo(codes.AsSpan(r * groups, groups));
        return codes;
    }
}
