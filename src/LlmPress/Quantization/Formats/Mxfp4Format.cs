using LlmPress.Numerics;

namespace LlmPress.Quantization;

// MXFP4 (OCP Microscaling v1.0): groups of 32 consecutive weights along the input dimension share an E8M0 scale.
//
//   scale  X = 2^e,  e = clamp(floor(log2 amax) − 2, −127, 127)   (amax = max |x| of the group; amax < 2^−126 → e = −127)
//   code   q = E2M1(x / X)   (round to nearest, ties to even code, saturating at ±6: amax/X is in [4, 8), so
//                             values in (6, 8)·X clip to 6 — the OCP rule, as FP-Quant and microxcaling implement it)
//   value  x ≈ E2M1(q)·X
//   MSE search: amax·p for the shrink factors p, each mapped through the same exponent rule, and the next larger
//               power of two, 2X, which clips nothing (amax/2X < 4) at the price of a coarser grid. A power-of-two scale
//               can only double or halve, so without 2X the search could never undo the OCP rule's clipping of (6, 8)·X.
//
// Stored tensors ([rows, cols] in the stored basis; the last group of a row may be short):
//   qweight U8 [rows, ceil(cols/2)]   E2M1 codes, element 2j in the low nibble of byte j
//   scales  U8 [rows, ceil(cols/32)]  E8M0 codes (value 2^(code − 127))
// bits/weight = 4 + 8/32 = 4.25. Mxfp4Block is the same data as a 17-byte block.

/// <summary>MXFP4 quantization; see the layout comment at the top of the file.</summary>
public static class Mxfp4Format
{
    /// <summary>4 bits per element + 8 bits per 32.</summary>
    public const double BitsPerWeight = 4.25;

    /// <summary>Quantizes [rows, cols] (see <see cref="QuantFormat.Quantize"/>).</summary>
    public static PackedWeight Quantize(ReadOnlySpan<float> weights, int rows, int cols, ScaleSearch search = ScaleSearch.MinMax) =>
        QuantFormat.Mxfp4().Quantize(weights, rows, cols, search);

    /// <summary>Scalar reference of <see cref="Quantize"/>.</summary>
    public static PackedWeight QuantizeReference(ReadOnlySpan<float> weights, int rows, int cols, ScaleSearch search = ScaleSearch.MinMax) =>
        QuantFormat.Mxfp4().QuantizeReference(weights, rows, cols, search);

    /// <summary>Dequantizes to FP32 [rows, cols] in the original basis.</summary>
    public static float[] Dequantize(PackedWeight weight)
    {
        if (weight.Format.Kind != QuantKind.Mxfp4) throw new ArgumentException($"{weight.Format} is not MXFP4.", nameof(weight));
        return weight.Dequantize();
    }

    /// <summary>E8M0 code of the OCP scale 2^(floor(log2 amax) − 2), clamped to [2^−127, 2^127].</summary>
    public static byte ScaleCode(float amax)
    {
        if (!(amax >= 1.17549435E-38f)) return E8M0.FromExponent(E8M0.MinExponent); // 0, subnormal (or NaN)
        int floorLog2 = (int)((BitConverter.SingleToUInt32Bits(amax) >> 23) & 0xFF) - 127;
        return E8M0.FromExponent(floorLog2 - 2);
    }

    internal static byte ComputeScale(ReadOnlySpan<float> x, ScaleSearch search, bool vectorized)
    {
        float amax = GroupRange.AbsMax(x, vectorized);
        byte code = ScaleCode(amax);
        if (search != ScaleSearch.Mse) return code;
        float best = ShrinkSearch.ErrorSum(x, new Fp4Rounding(E8M0.Decode(code)), vectorized);
        byte last = code;
        if (code < E8M0.NaN - 1)
        {
            byte larger = (byte)(code + 1);
            float error = ShrinkSearch.ErrorSum(x, new Fp4Rounding(E8M0.Decode(larger)), vectorized);
            if (error < best)
            {
                best = error;
                code = larger;
            }
        }
        var factors = ShrinkSearch.Factors;
        for (int i = 1; i < factors.Length; i++)
        {
            byte candidate = ScaleCode(amax * factors[i]);
            if (candidate == last) continue;
            last = candidate;
            float error = ShrinkSearch.ErrorSum(x, new Fp4Rounding(E8M0.Decode(candidate)), vectorized);
            if (error < best)
            {
                best = error;
                code = candidate;
            }
        }
        return code;
    }

    internal readonly struct Rule : IFp4ScaleRule
    {
        public byte ComputeScale(ReadOnlySpan<float> x, ScaleSearch search, bool vectorized) => Mxfp4Format.ComputeScale(x, search, vectorized);
        public float EffectiveScale(byte code) => E8M0.Decode(code);
    }

    internal static TensorLayout[] Layout(QuantFormat format, int rows, int cols) =>
        Fp4Planes.Layout(rows, format.StoredColumns(cols), Mxfp4Block.Length);

    internal static PackedWeight QuantizeStored(QuantFormat format, ReadOnlySpan<float> stored, int rows, int cols, ScaleSearch search, bool fast)
    {
        var (qweight, scales) = Fp4Planes.Quantize(stored, rows, format.StoredColumns(cols), Mxfp4Block.Length, new Rule(), search, fast);
        return Build(format, rows, cols, qweight, scales);
    }

    internal static PackedWeight Build(QuantFormat format, int rows, int cols, byte[] qweight, byte[] scales)
    {
        var layout = Layout(format, rows, cols);
        return new PackedWeight(format, rows, cols,
        [
            new PackedTensor("qweight", DType.U8, layout[0].Shape, qweight),
            new PackedTensor("scales", DType.U8, layout[1].Shape, scales),
        ]);
    }

    internal static void DequantizeStored(PackedWeight weight, float[] result) =>
        Fp4Planes.Dequantize(weight.GetTensor("qweight").Data, weight.GetTensor("scales").Data, weight.Rows, weight.StoredColumns,
            Mxfp4Block.Length, new Rule(), result);

    internal static void Validate(PackedWeight weight)
    {
        var scales = weight.GetTensor("scales");
        int groups = (int)scales.Shape[1];
        for (int i = 0; i < scales.Data.Length; i++)
            if (scales.Data[i] == E8M0.NaN) QuantThrow.InvalidData_BadScale(weight.Format, "scales", i / groups, i % groups, "E8M0 NaN (0xFF)");
    }
}
