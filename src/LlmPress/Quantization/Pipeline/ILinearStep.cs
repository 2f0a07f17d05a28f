using LlmPress.Models;

namespace LlmPress.Quantization.Pipeline;

/// <summary>
/// What <see cref="LayerwisePipeline"/> does to each linear: quantize it, prune it, or both. The pipeline owns the
/// schedule (decoder layer by layer, true-sequential groups, Hessians, activation stores, journal); a step only turns
/// one linear and the Hessian of its inputs into its compressed form.
/// </summary>
internal interface ILinearStep
{
    /// <summary>Method name, as on the command line and in reports and errors.</summary>
    string MethodName { get; }

    /// <summary>True when the step cannot run without calibration data (Hessians).</summary>
    bool NeedsCalibration { get; }

    /// <summary>False for a linear kept as stored (--keep): <see cref="Compress"/> is not called for it.</summary>
    bool Applies(LinearLayer linear);

    /// <summary>The run's plan (memory, spilling, time) for <paramref name="samples"/> × <paramref name="sequenceLength"/> calibration tokens.</summary>
    QuantizationPlan Plan(LlamaModel model, int? samples, int? sequenceLength, long? maxMemoryBytes);

    /// <summary>Called once per decoder layer before any of its linears is compressed (on the layer's stored weights).</summary>
    void BeginLayer(DecoderLayer layer);

    /// <summary>
    /// Compresses <paramref name="linear"/> (an applicable one) and installs the compressed weight in it, so later
    /// calibration passes run on it. <paramref name="hessian"/>: H = 2/N·Σxxᵀ of its inputs [cols, cols], or null
    /// without calibration.
    /// </summary>
    (CompressedLinear Linear, LayerReport Report) Compress(LinearLayer linear, float[]? hessian);
}
