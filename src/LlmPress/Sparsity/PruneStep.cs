using System.Diagnostics;
using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Quantization;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Sparsity;

/// <summary>
/// The prune (or prune + quantize) step of <see cref="LayerwisePipeline"/>: each linear that is not kept goes through
/// <see cref="LayerPruner"/>, and the weight as it will be stored — dequantized codes, or the pruned weight rounded to the
/// source dtype — is swapped in, so later calibration passes, the reported errors and the checkpoint all see the same
/// values.
/// </summary>
internal sealed class PruneStep(PruneOptions options) : ILinearStep
{
    private readonly QuantizeOptions? _quantize = options.EffectiveQuantize;
    private Dictionary<LinearLayer, float>? _globalScales;

    /// <summary>The pruners' non-fatal problems (dampening retries), one line each, naming the layer.</summary>
    public List<string> Warnings { get; } = [];

    public string MethodName => PruneOptions.MethodName(options.Method);

    public bool NeedsCalibration => options.NeedsCalibration;

    public bool Applies(LinearLayer linear) => !options.Keeps(linear.Name);

    public QuantizationPlan Plan(LlamaModel model, int? samples, int? sequenceLength, long? maxMemoryBytes) =>
        PruningPipeline.Plan(model, options, samples, sequenceLength, maxMemoryBytes);

    public void BeginLayer(DecoderLayer layer) =>
        _globalScales = _quantize is { ShareNvfp4GlobalScale: true } q ? QuantizeStep.SharedNvfp4GlobalScales(layer, q) : null;

    public (CompressedLinear Linear, LayerReport Report) Compress(LinearLayer linear, float[]? hessian)
    {
        var start = Stopwatch.GetTimestamp();
        var original = linear.Weight;
        int rows = original.Rows, cols = original.Cols;
        float[] weight = original.ToFloatArray();
        var pattern = options.PatternFor(linear.Name);
        var format = _quantize?.FormatFor(linear.Name, cols);
        float? globalScale = _globalScales is not null && _globalScales.TryGetValue(linear, out float g) ? g : null;
        PruneResult result;
        try
        {
            result = LayerPruner.Prune(options, weight, rows, cols, hessian, pattern, format, globalScale, linear.Name);
        }
        catch (ArgumentException e) when (!e.Message.Contains(linear.Name, StringComparison.Ordinal))
        {
            throw new ArgumentException($"{linear.Name}: {e.Message}", e);
        }

        foreach (var warning in result.Warnings)
            Warnings.Add(warning.Contains(linear.Name, StringComparison.Ordinal) ? warning : $"{linear.Name}: {warning}");
        float[] stored = result.Weight;
        CompressedLinear compressed;
        string storedFormat;
        long bytesAfter;
        if (result.Packed is { } packed)
        {
            compressed = CompressedLinear.FromPacked(linear.Name, packed);
            storedFormat = packed.Format.Name;
            bytesAfter = packed.StorageBytes;
        }
        else
        {
            // The checkpoint keeps the source dtype: measure and propagate what it will hold.
            StoredValues.Round(original.Type, stored);
            compressed = CompressedLinear.FromDense(linear.Name, stored, rows, cols, original.Type);
            (_, storedFormat, bytesAfter) = options.StorageFor(linear.Name, original.Type, rows, cols);
        }
        linear.Weight = WeightView.FromFloats(stored, rows, cols);
        double weightError = LayerError.RelativeWeightError(weight, stored);
        double? outputError = hessian is null ? null : LayerError.RelativeOutputError(weight, stored, rows, cols, hessian);
        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var report = new LayerReport(linear.Name, rows, cols, storedFormat, bytesAfter * 8.0 / ((double)rows * cols), weightError, outputError,
            seconds, original.Data.Length, bytesAfter, pattern.Name, result.PrunedCount, options.Method == PruneMethod.Iobs ? result.Iterations : null);
        return (compressed, report);
    }
}
