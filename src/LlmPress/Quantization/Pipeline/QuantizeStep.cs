using System.Diagnostics;
using LlmPress.Calibration;
using LlmPress.Models;
using LlmPress.Numerics;

namespace LlmPress.Quantization.Pipeline;

/// <summary>
/// The quantize step of <see cref="LayerwisePipeline"/>: RTN, GPTQ, MR-GPTQ or HIGGS on each linear that
/// <see cref="QuantizeOptions.FormatFor"/> does not keep, the dequantized weight swapped in for the later passes.
/// </summary>
internal sealed class QuantizeStep(QuantizeOptions options) : ILinearStep
{
    private Dictionary<LinearLayer, float>? _globalScales;

    public string MethodName => QuantizationPipeline.MethodName(options.Method);

    public bool NeedsCalibration => options.NeedsCalibration;

    public bool Applies(LinearLayer linear) => options.FormatFor(linear.Name, linear.InFeatures) is not null;

    public QuantizationPlan Plan(LlamaModel model, int? samples, int? sequenceLength, long? maxMemoryBytes) =>
        QuantizationPlan.Create(model, options, samples, sequenceLength, maxMemoryBytes);

    public void BeginLayer(DecoderLayer layer) =>
        _globalScales = options.ShareNvfp4GlobalScale ? SharedNvfp4GlobalScales(layer, options) : null;

    public (CompressedLinear Linear, LayerReport Report) Compress(LinearLayer linear, float[]? hessian)
    {
        var format = options.FormatFor(linear.Name, linear.InFeatures)!;
        float? globalScale = _globalScales is not null && _globalScales.TryGetValue(linear, out float g) ? g : null;
        var (packed, report) = QuantizeLinear(linear, hessian, format, options, globalScale);
        return (CompressedLinear.FromPacked(linear.Name, packed), report);
    }

    // Quantizes one linear and swaps its dequantized FP32 weight in: in the original basis, or for a rotating format in
    // the rotated basis with the matching online input rotation (as the quantized checkpoint is run later).
    private static (PackedWeight Packed, LayerReport Report) QuantizeLinear(LinearLayer linear, float[]? hessian, QuantFormat format,
        QuantizeOptions options, float? nvfp4GlobalScale)
    {
        var start = Stopwatch.GetTimestamp();
        var original = linear.Weight;
        int rows = original.Rows, cols = original.Cols;
        float[] weight = original.ToFloatArray();
        PackedWeight packed;
        float[] dequantized;
        try
        {
            if (options.UsesGptq)
            {
                var gptq = Gptq.Quantize(weight, rows, cols, hessian!, format, new GptqOptions
                {
                    ActOrder = options.EffectiveActOrder,
                    DampPercent = options.DampPercent,
                    ScaleSearch = options.EffectiveScaleSearch,
                    Nvfp4GlobalScale = nvfp4GlobalScale,
                    LayerName = linear.Name,
                });
                packed = gptq.Packed;
                dequantized = gptq.Dequantized;
            }
            else
            {
                packed = nvfp4GlobalScale is float g
                    ? Nvfp4Format.Quantize(format, weight, rows, cols, g, options.EffectiveScaleSearch)
                    : format.Quantize(weight, rows, cols, options.EffectiveScaleSearch);
                dequantized = packed.Dequantize();
            }
        }
        catch (ArgumentException e) when (!e.Message.Contains(linear.Name, StringComparison.Ordinal))
        {
            throw new ArgumentException($"{linear.Name}: {e.Message}", e);
        }
        double weightError = LayerError.RelativeWeightError(weight, dequantized);
        double? outputError = hessian is null ? null : LayerError.RelativeOutputError(weight, dequantized, rows, cols, hessian);
        if (format.RotationBlockSize is int b)
            linear.SetRotatedWeight(WeightView.FromFloats(packed.DequantizeStored(), rows, packed.StoredColumns), b);
        else
            linear.Weight = WeightView.FromFloats(dequantized, rows, cols);
        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var report = new LayerReport(linear.Name, rows, cols, packed.Format.Name, packed.BitsPerWeight, weightError, outputError,
            seconds, original.Data.Length, packed.StorageBytes);
        return (packed, report);
    }

    /// <summary>
    /// NVFP4 per-tensor scales for the linears an engine runs fused — q/k/v and gate/up (one GEMM over concatenated
    /// weights, one global scale: vLLM takes a fused layer's largest-amax shard): each member gets the smallest g of its
    /// group, computed on the stored-basis weights before any of them is quantized (FP-Quant's --fuse_global_scale).
    /// </summary>
    internal static Dictionary<LinearLayer, float>? SharedNvfp4GlobalScales(DecoderLayer layer, QuantizeOptions options)
    {
        Dictionary<LinearLayer, float>? result = null;
        foreach (var group in new[] { new[] { layer.QueryProj, layer.KeyProj, layer.ValueProj }, [layer.GateProj, layer.UpProj] })
        {
            float shared = float.MaxValue;
            var members = new List<LinearLayer>();
            foreach (var linear in group)
            {
                if (options.FormatFor(linear.Name, linear.InFeatures) is not { Kind: QuantKind.Nvfp4 } format) continue;
                var w = linear.Weight;
                shared = Math.Min(shared, Nvfp4Format.ComputeGlobalScale(format.ToStoredBasis(w.ToFloatArray(), w.Rows, w.Cols)));
                members.Add(linear);
            }
            if (members.Count < 2) continue;
            result ??= [];
            foreach (var linear in members) result[linear] = shared;
        }
        return result;
    }
}
