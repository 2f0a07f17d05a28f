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
/// Without calibration data (RTN, HIGGS) no pass runs and no output error is reported. Embeddings and lm_head are
/// left alone. The model is restored to its original weights when the run ends (or fails). With a
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
        var run = LayerwisePipeline.Run(model, new QuantizeStep(options), calibration, layerDone, settings);
        var report = run.ToReport(MethodName(options.Method), options.EffectiveFormat.Name, calibration);
        return new QuantizationResult([.. run.Linears.Select(l => new QuantizedLayer(l.Name, l.Packed!))], report);
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
