using System.Diagnostics;
using LlmPress.Calibration;
using LlmPress.Models;

namespace LlmPress.Quantization.Pipeline;

/// <summary>
/// Quantizes every decoder-layer linear of a model, one decoder layer at a time, in GPTQ's true-sequential order:
/// <list type="number">
/// <item>embed every calibration sample once: hidden states [samples, seqLen, hidden] stay in an
/// <see cref="ActivationStore"/> (RAM, or a spill file under a memory budget);</item>
/// <item>within a layer, quantize the linears group by group in execution order — q/k/v, then o, then gate/up, then
/// down — each group's Hessian accumulated on the inputs produced by the groups already quantized before it, so
/// later linears correct for the earlier ones' errors (gptq.py's --true-sequential);</item>
/// <item>the stage outputs are kept per sample in a second store (attention outputs, later the MLP activations: never
/// live at the same time, so one store of the wider of the two serves both), allocated once per run, so each layer
/// costs one forward pass over the calibration set and allocates nothing per sample;</item>
/// <item>the fully quantized layer's outputs are the next layer's inputs, so errors propagate.</item>
/// </list>
/// Without calibration data (RTN, HIGGS) no pass runs and no output error is reported. Embeddings are left alone, and
/// lm_head too unless <see cref="QuantizeOptions.LmHeadFormat"/> asks for it (then rounded to nearest after the
/// layers). The model is restored to its original weights when the run ends (or fails). With a
/// <see cref="QuantizationJournal"/>, each finished layer is recorded (packed weights, reports, next layer's inputs)
/// and a rerun skips the recorded layers, giving a bit-identical result. The schedule is <see cref="LayerwisePipeline"/>'s
/// (shared with pruning); the per-linear step is <see cref="QuantizeStep"/>.
/// </summary>
public static class QuantizationPipeline
{
    /// <summary>Runs the pipeline.</summary>
    /// <param name="model">The FP model; its layers are modified during the run and restored afterwards.</param>
    /// <param name="options">Method and format.</param>
    /// <param name="calibration">Calibration windows; required for GPTQ, optional otherwise (enables output errors).</param>
    /// <param name="layerDone">Called with the number of decoder layers finished so far (recorded in the journal, if any).</param>
    /// <param name="settings">Journal, memory budget and cancellation; default none, no limit.</param>
    /// <exception cref="ArgumentException">Missing calibration for GPTQ, windows longer than the model's positions, a
    /// format/method mismatch, or a quantization failure (the message names the layer).</exception>
    /// <exception cref="OperationCanceledException">The settings' token was cancelled; the journal keeps the finished layers.</exception>
    /// <exception cref="InvalidDataException">The journal does not fit the model or is corrupt.</exception>
    public static QuantizationResult Run(LlamaModel model, QuantizeOptions options, CalibrationData? calibration = null,
        Action<int>? layerDone = null, QuantizationRunSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        // GPTQ rounds the head on the Hessian of its inputs: the final norm's outputs after every quantized layer.
        bool headHessian = options.LmHeadFormat is not null && options.UsesGptq;
        var run = LayerwisePipeline.Run(model, new QuantizeStep(options), calibration, layerDone, settings, headHessian);
        var report = run.ToReport(MethodName(options.Method), options.EffectiveFormat.Name, calibration);
        var layers = new List<QuantizedLayer>(run.Linears.Select(l => new QuantizedLayer(l.Name, l.Packed!)));
        settings?.CancellationToken.ThrowIfCancellationRequested();
        if (QuantizeHead(model, options, run.FinalHessian) is var (head, headReport))
        {
            layers.Add(head);
            report = report with { Layers = [.. report.Layers, headReport], WallSeconds = report.WallSeconds + headReport.Seconds };
        }
        return new QuantizationResult(layers, report);
    }

    /// <summary>
    /// The lm_head quantized to <see cref="QuantizeOptions.LmHeadFormat"/> from the weight as stored (the embedding when
    /// tied, which itself stays as it is), or null when the options keep it: by GPTQ on <paramref name="hessian"/> (the
    /// final norm's outputs after the quantized layers, GPTQModel's lm_head quantization) when the method is GPTQ or
    /// MR-GPTQ, else round-to-nearest. The model is not changed.
    /// </summary>
    /// <exception cref="ArgumentException">The head's weights cannot be quantized (e.g. NaN); the message names lm_head.</exception>
    internal static (QuantizedLayer Layer, LayerReport Report)? QuantizeHead(LlamaModel model, QuantizeOptions options, float[]? hessian = null)
    {
        var head = model.LmHead;
        if (options.LmHeadFormatFor(head.InFeatures) is not { } format) return null;
        long start = Stopwatch.GetTimestamp();
        var stored = head.Weight; // [vocab, hidden]
        var (packed, _, error, outputError) = QuantizeStep.Quantize(ModelConfig.LmHeadModule, stored.ToFloatArray(), stored.Rows, stored.Cols,
            hessian, format, options, options.LmHeadScaleSearch, nvfp4GlobalScale: null);
        // A tied head had no bytes of its own: its packed tensors are added (QuantizationPlan counts it the same way).
        long before = model.Config.TieWordEmbeddings ? 0 : stored.Data.Length;
        var report = new LayerReport(ModelConfig.LmHeadModule, stored.Rows, stored.Cols, packed.Format.Name, packed.BitsPerWeight, error, outputError,
            Stopwatch.GetElapsedTime(start).TotalSeconds, before, packed.StorageBytes);
        return (new QuantizedLayer(ModelConfig.LmHeadModule, packed), report);
    }

    /// <summary>Lower-case method name as used on the command line and in reports.</summary>
    public static string MethodName(QuantMethod method) => method switch
    {
        QuantMethod.Gptq => "gptq",
        QuantMethod.Higgs => "higgs",
        QuantMethod.MrGptq => "mr-gptq",
        _ => "rtn",
    };
}
