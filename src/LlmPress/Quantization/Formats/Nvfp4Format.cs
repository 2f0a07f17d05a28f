using LlmPress.Numerics;

namespace LlmPress.Quantization;

// NVFP4: groups of 16 consecutive weights along the input dimension share an FP8 E4M3 scale; one FP32 global scale
// per tensor lets the E4M3 scales use their whole range (FP-Quant's quantizer).
//
//   global  g = 448·6 / amax(tensor)    (all-zero or subnormal tensors: g = 1)
//   scale   c = E4M3(amax(group)/6 · g)  (round to nearest even, saturating at 448; a 0 code is replaced by 1.0)
//           effective scale s = E4M3(c)/g
//   code    q = E2M1(x / s)               (ties to even code, saturating at ±6)
//   value   x ≈ E2M1(q)·E4M3(c)/g
//   MSE search: amax·p/6 for the shrink factors p, each through the same E4M3 rounding.
//
// Stored tensors ([rows, cols] in the stored basis; the last group of a row may be short):
//   qweight      U8  [rows, ceil(cols/2)]   E2M1 codes, element 2j in the low nibble of byte j
//   scales       U8  [rows, ceil(cols/16)]  E4M3 bit patterns
//   global_scale F32 [1]                    g (dequantize divides by it)
// bits/weight = 4 + 8/16 = 4.5, plus 32 bits per tensor. Nvfp4Block is the same data as a 9-byte block.

/// <summary>NVFP4 quantization; see the layout comment at the top of the file.</summary>
public static class Nvfp4Format
{
    /// <summary>4 bits per element + 8 bits per 16 (plus 32 bits per tensor).</summary>
    public const double BitsPerWeight = 4.5;

    private const byte OneCode = 0x38; // E4M3 1.0

    /// <summary>Quantizes [rows, cols] (see <see cref="QuantFormat.Quantize"/>).</summary>
    public static PackedWeight Quantize(ReadOnlySpan<float> weights, int rows, int cols, ScaleSearch search = ScaleSearch.MinMax) =>
        QuantFormat.Nvfp4().Quantize(weights, rows, cols, search);

    /// <summary>Scalar reference of <see cref="Quantize"/>.</summary>
    public static PackedWeight QuantizeReference(ReadOnlySpan<float> weights, int rows, int cols, ScaleSearch search = ScaleSearch.MinMax) =>
        QuantFormat.Nvfp4().QuantizeReference(weights, rows, cols, search);

    /// <summary>Dequantizes to FP32 [rows, cols] in the original basis.</summary>
    public static float[] Dequantize(PackedWeight weight)
    {
        if (weight.Format.Kind != QuantKind.Nvfp4) throw new ArgumentException($"{weight.Format} is not NVFP4.", nameof(weight));
        return weight.Dequantize();
    }

    /// <summary>
    /// The per-tensor scale g = 448·6 / max|w| (1 when that is not finite and positive, e.g. an all-zero tensor).
    /// Layers fused at inference (q/k/v, gate/up) may share the smallest of their g (pass it to <see cref="Nvfp4ColumnQuantizer"/>).
    /// </summary>
    public static float ComputeGlobalScale(ReadOnlySpan<float> weights) => GlobalScaleFromAmax(GroupRange.AbsMax(weights, vectorized: true));

    /// <summary>
    /// Quantizes with a given global scale (e.g. the smallest g of layers fused at inference) instead of the tensor's own.
    /// </summary>
    /// <param name="format">An NVFP4 format (with or without rotation).</param>
    /// <param name="weights">[rows, cols] in the original basis.</param>
    public static PackedWeight Quantize(QuantFormat format, ReadOnlySpan<float> weights, int rows, int cols, float globalScale,
        ScaleSearch search = ScaleSearch.MinMax)
    {
        CheckKind(format);
        CheckGlobalScale(globalScale);
        return format.QuantizeCore(weights, rows, cols, search, fast: true, globalScale);
    }

    /// <summary>A <see cref="ColumnQuantizer"/> with a given global scale (see <see cref="QuantFormat.CreateColumnQuantizer"/>).</summary>
    public static ColumnQuantizer CreateColumnQuantizer(QuantFormat format, int rows, int cols, float globalScale,
        ScaleSearch search = ScaleSearch.MinMax)
    {
        CheckKind(format);
        CheckGlobalScale(globalScale);
        return new Fp4ColumnQuantizer<Rule>(format, rows, cols, new Rule(globalScale), search) { GlobalScale = globalScale };
    }

    private static void CheckKind(QuantFormat format)
    {
        ArgumentNullException.ThrowIfNull(format);
        if (format.Kind != QuantKind.Nvfp4) throw new ArgumentException($"{format} is not NVFP4.", nameof(format));
    }

    internal static float GlobalScaleFromAmax(float amax)
    {
        float g = Fp8E4M3.MaxValue * Fp4E2M1.MaxValue / amax;
        return amax > 0f && float.IsFinite(g) ? g : 1f;
    }

    internal static void CheckGlobalScale(float globalScale)
    {
        if (!(globalScale > 0f) || !float.IsFinite(globalScale)) QuantThrow.Argument_GlobalScale(globalScale);
    }

    /// <summary>E4M3 code of the block scale for a group absolute maximum (already shrunk by the MSE search, if any).</summary>
    public static byte ScaleCode(float amax, float globalScale)
    {
        byte code = Fp8E4M3.Encode(amax / 6f * globalScale);
        return code == 0 ? OneCode : code;
    }

    /// <summary>E4M3(code)/g, the scale elements are divided by.</summary>
    public static float EffectiveScale(byte code, float globalScale) => Fp8E4M3.Decode(code) / globalScale;

    internal static byte ComputeScale(ReadOnlySpan<float> x, float globalScale, ScaleSearch search, bool vectorized)
    {
        float amax = GroupRange.AbsMax(x, vectorized);
        byte code = ScaleCode(amax, globalScale);
        if (search != ScaleSearch.Mse) return code;
        float best = ShrinkSearch.ErrorSum(x, new Fp4Rounding(EffectiveScale(code, globalScale)), vectorized);
        byte last = code;
        var factors = ShrinkSearch.Factors;
        for (int i = 1; i < factors.Length; i++)
        {
            byte candidate = ScaleCode(amax * factors[i], globalScale);
            if (candidate == last) continue;
            last = candidate;
            float error = ShrinkSearch.ErrorSum(x, new Fp4Rounding(EffectiveScale(candidate, globalScale)), vectorized);
            if (error < best)
            {
                best = error;
                code = candidate;
            }
        }
        return code;
    }

    internal readonly struct Rule(float globalScale) : IFp4ScaleRule
    {
        public byte ComputeScale(ReadOnlySpan<float> x, ScaleSearch search, bool vectorized) => Nvfp4Format.ComputeScale(x, globalScale, search, vectorized);
        public float EffectiveScale(byte code) => Nvfp4Format.EffectiveScale(code, globalScale);
    }

    internal static TensorLayout[] Layout(QuantFormat format, int rows, int cols) =>
        [.. Fp4Planes.Layout(rows, format.StoredColumns(cols), Nvfp4Block.Length), new TensorLayout("global_scale", DType.F32, [1])];

    internal static PackedWeight QuantizeStored(QuantFormat format, ReadOnlySpan<float> stored, int rows, int cols, ScaleSearch search,
        float? globalScale, bool fast)
    {
        float g = globalScale ?? GlobalScaleFromAmax(GroupRange.AbsMax(stored, fast));
        CheckGlobalScale(g);
        var (qweight, scales) = Fp4Planes.Quantize(stored, rows, format.StoredColumns(cols), Nvfp4Block.Length, new Rule(g), search, fast);
        return Build(format, rows, cols, qweight, scales, g);
    }

    internal static PackedWeight Build(QuantFormat format, int rows, int cols, byte[] qweight, byte[] scales, float globalScale)
    {
        var layout = Layout(format, rows, cols);
        return new PackedWeight(format, rows, cols,
        [
            new PackedTensor("qweight", DType.U8, layout[0].Shape, qweight),
            new PackedTensor("scales", DType.U8, layout[1].Shape, scales),
            new PackedTensor("global_scale", DType.F32, layout[2].Shape, BitConverter.GetBytes(globalScale)),
        ]);
    }

    internal static float GlobalScale(PackedWeight weight) => BitConverter.ToSingle(weight.GetTensor("global_scale").Data);

    internal static void DequantizeStored(PackedWeight weight, float[] result) =>
        Fp4Planes.Dequantize(weight.GetTensor("qweight").Data, weight.GetTensor("scales").Data, weight.Rows, weight.StoredColumns,
            Nvfp4Block.Length, new Rule(GlobalScale(weight)), result);

    internal static void Validate(PackedWeight weight)
    {
        float g = GlobalScale(weight);
        if (!(g > 0f) || !float.IsFinite(g)) QuantThrow.InvalidData_BadGlobalScale(weight.Format, g);
        var scales = weight.GetTensor("scales");
        int groups = (int)scales.Shape[1];
        for (int i = 0; i < scales.Data.Length; i++)
            if ((scales.Data[i] & 0x7F) == Fp8E4M3.NaN)
                QuantThrow.InvalidData_BadScale(weight.Format, "scales", i / groups, i % groups, $"E4M3 NaN (0x{scales.Data[i]:X2})");
    }
}
