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
        var (packed, dequantized, weightError, outputError) = Quantize(linear.Name, original.ToFloatArray(), rows, cols, hessian, format, options,
            options.EffectiveScaleSearch, nvfp4GlobalScale);
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
    /// weight [rows, cols] in <paramref name="format"/>: by GPTQ on <paramref name="hessian"/> when the method runs GPTQ
    /// and a Hessian is given, else rounded to nearest (NVFP4 with <paramref name="nvfp4GlobalScale"/> when given); with
    /// the dequantized weight in the original basis and the relative weight and output errors (the latter null without
    /// a Hessian). Shared by the decoder linears and the lm_head (<see cref="QuantizationPipeline.QuantizeHead"/>).
    /// </summary>
    /// <exception cref="ArgumentException">The weight cannot be quantized; the message names <paramref name="name"/>.</exception>
    internal static (PackedWeight Packed, float[] Dequantized, double WeightError, double? OutputError) Quantize(string name, float[] weight,
        int rows, int cols, float[]? hessian, QuantFormat format, QuantizeOptions options, ScaleSearch scaleSearch, float? nvfp4GlobalScale)
    {
        PackedWeight packed;
        float[] dequantized;
        try
        {
            if (options.UsesGptq && hessian is not null)
            {
                var gptq = Gptq.Quantize(weight, rows, cols, hessian, format, new GptqOptions
                {
                    ActOrder = options.EffectiveActOrder,
                    DampPercent = options.DampPercent,
                    ScaleSearch = scaleSearch,
                    Nvfp4GlobalScale = nvfp4GlobalScale,
                    LayerName = name,
                });
                packed = gptq.Packed;
                dequantized = gptq.Dequantized;
            }
            else
            {
                packed = nvfp4GlobalScale is float g
                    ? Nvfp4Format.Quantize(format, weight, rows, cols, g, scaleSearch)
                    : format.Quantize(weight, rows, cols, scaleSearch);
                dequantized = packed.Dequantize();
            }
        }
        catch (ArgumentException e) when (!e.Message.Contains(name, StringComparison.Ordinal))
        {
            throw new ArgumentException($"{name}: {e.Message}", e);
        }
        double weightError = LayerError.RelativeWeightError(weight, dequantized);
        double? outputError = hessian is null ? null : LayerError.RelativeOutputError(weight, dequantized, rows, cols, hessian);
        return (packed, dequantized, weightError, outputError);
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
