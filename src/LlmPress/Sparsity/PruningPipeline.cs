using System.Diagnostics;
using LlmPress.Calibration;
using LlmPress.Models;
using LlmPress.Quantization.Pipeline;

namespace LlmPress.Sparsity;

/// <summary>
/// What <see cref="PruningPipeline.Run"/> produced: the compressed linears in model order, the report, and the pruners'
/// warnings (dampening retries) of the layers this run computed (not of layers taken from a journal).
/// </summary>
public sealed record PruningResult(IReadOnlyList<CompressedLinear> Layers, QuantizationReport Report, IReadOnlyList<string> Warnings);

/// <summary>
/// Prunes (and with <see cref="PruneOptions.Quantize"/> also quantizes) every decoder-layer linear of a model, one
/// decoder layer at a time and true-sequentially, exactly as <see cref="QuantizationPipeline"/> quantizes: the same
/// schedule (<see cref="LayerwisePipeline"/>: q/k/v → o → gate/up → down on Hessians of the inputs that the already
/// pruned groups produce, the pruned layer's outputs feeding the next layer), activation stores, memory budget,
/// journal and --resume. Magnitude pruning runs without calibration; with it, output errors are reported.
/// </summary>
public static class PruningPipeline
{
    /// <summary>Runs the pipeline.</summary>
    /// <param name="model">The model; its layers are modified during the run and restored afterwards.</param>
    /// <param name="options">Method, sparsity, joint quantization.</param>
    /// <param name="calibration">Calibration windows; required except for magnitude pruning without GPTQ quantization.</param>
    /// <param name="layerDone">Called with the number of decoder layers finished so far.</param>
    /// <param name="settings">Journal, memory budget and cancellation.</param>
    /// <exception cref="ArgumentException">Bad settings, a pattern that does not fit a layer (named), missing calibration.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the journal keeps the finished layers.</exception>
    public static PruningResult Run(LlamaModel model, PruneOptions options, CalibrationData? calibration = null, Action<int>? layerDone = null,
        QuantizationRunSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate(model);
        var step = new PruneStep(options);
        var run = LayerwisePipeline.Run(model, step, calibration, layerDone, settings);
        var report = run.ToReport(PruneOptions.MethodName(options.Method), FormatName(model, options), calibration, options.Sparsity.Name);
        return new PruningResult(run.Linears, report, step.Warnings);
    }

    /// <summary>What a run will do and cost (`prune --dry-run`), computed before any work.</summary>
    public static QuantizationPlan Plan(LlamaModel model, PruneOptions options, int? samples, int? sequenceLength, long? maxMemoryBytes = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate(model);
        var quantize = options.EffectiveQuantize;
        var layers = new List<PlannedLayer>();
        foreach (var layer in model.Layers)
            foreach (var linear in layer.Linears)
            {
                if (options.Keeps(linear.Name)) continue;
                int rows = linear.OutFeatures, cols = linear.InFeatures;
                var weight = linear.Weight;
                string pattern = options.PatternFor(linear.Name).Name;
                if (quantize?.FormatFor(linear.Name, cols) is { } format)
                {
                    double bits = format.BitsPerWeight(cols);
                    layers.Add(new PlannedLayer(linear.Name, rows, cols, $"{pattern} {format.Name}", bits, weight.Data.Length, (long)Math.Ceiling(bits * rows * cols / 8)));
                }
                else
                {
                    var (_, name, bytes) = options.StorageFor(linear.Name, weight.Type, rows, cols);
                    layers.Add(new PlannedLayer(linear.Name, rows, cols, $"{pattern} {name}", bytes * 8.0 / ((double)rows * cols), weight.Data.Length, bytes));
                }
            }
        // SparseGPT, iterative OBS and GPTQ joint quantization solve per layer as GPTQ does (iobs: per iteration).
        bool solves = options.Method is PruneMethod.SparseGpt or PruneMethod.Iobs || quantize is { UsesGptq: true };
        return QuantizationPlan.Create(model, PruneOptions.MethodName(options.Method), FormatName(model, options), layers, solves,
            samples, sequenceLength, maxMemoryBytes);
    }

    // The joint format, or the stored dtype of the first pruned linear ("f32", "bf16").
    private static string FormatName(LlamaModel model, PruneOptions options)
    {
        if (options.EffectiveQuantize is { } q) return q.EffectiveFormat.Name;
        foreach (var layer in model.Layers)
            foreach (var linear in layer.Linears)
                if (!options.Keeps(linear.Name)) return Numerics.DTypeInfo.SafeTensorsName(linear.Weight.Type).ToLowerInvariant();
        return "none";
    }
}
