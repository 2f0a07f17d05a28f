using System.Diagnostics;
using LlmPress.Calibration;
using LlmPress.Models;
using LlmPress.Numerics;

namespace LlmPress.Quantization.Pipeline;

/// <summary>
/// Quantizes every decoder-layer linear of a model, one decoder layer at a time, in GPTQ's true-sequential order:
/// <list type="number">
/// <item>embed every calibration sample once: hidden states [samples, seqLen, hidden] stay in memory;</item>
/// <item>within a layer, quantize the linears group by group in execution order — q/k/v, then o, then gate/up, then
/// down — each group's Hessian accumulated on the inputs produced by the groups already quantized before it, so
/// later linears correct for the earlier ones' errors (gptq.py's --true-sequential);</item>
/// <item>the stage outputs are kept per sample (attention outputs, and the MLP activations while they fit
/// <see cref="ActivationBudgetBytes"/>), so each layer costs one forward pass over the calibration set, not two;</item>
/// <item>the fully quantized layer's outputs are the next layer's inputs, so errors propagate.</item>
/// </list>
/// Without calibration data (RTN, HIGGS) no pass runs and no output error is reported. Embeddings and lm_head are
/// left alone. The model is restored to its original weights when the run ends (or fails).
/// </summary>
public static class QuantizationPipeline
{
    /// <summary>
    /// MLP activations ([samples, seqLen, intermediate] floats) are kept between the down_proj Hessian pass and the
    /// output pass while they fit in this many bytes; beyond it they are recomputed (gate/up run twice).
    /// </summary>
    public const long ActivationBudgetBytes = 4L << 30;

    /// <summary>Runs the pipeline.</summary>
    /// <param name="model">The FP model; its layers are modified during the run and restored afterwards.</param>
    /// <param name="options">Method and format.</param>
    /// <param name="calibration">Calibration windows; required for GPTQ, optional otherwise (enables output errors).</param>
    /// <param name="layerDone">Called with the number of decoder layers finished so far.</param>
    /// <exception cref="ArgumentException">Missing calibration for GPTQ, windows longer than the model's positions, a
    /// format/method mismatch, or a quantization failure (the message names the layer).</exception>
    public static QuantizationResult Run(LlamaModel model, QuantizeOptions options, CalibrationData? calibration = null,
        Action<int>? layerDone = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (options.NeedsCalibration && calibration is null)
            throw new ArgumentException($"Method {MethodName(options.Method)} is data-aware and needs calibration text (--calib FILE).");
        var config = model.Config;
        if (calibration is not null && calibration.SequenceLength > config.MaxPositions)
            throw new ArgumentException($"Calibration windows of {calibration.SequenceLength} tokens exceed the model's {config.MaxPositions} positions.");

        var clock = Stopwatch.StartNew();
        long peakManaged = GC.GetTotalMemory(false);
        int d = config.HiddenSize;
        int seqLen = calibration?.SequenceLength ?? 0;

        // hidden[s]: [seqLen, hidden], the current layer's input for sample s.
        float[][] hidden = [];
        ForwardScratch? scratch = null;
        if (calibration is not null)
        {
            hidden = new float[calibration.SampleCount][];
            for (int s = 0; s < hidden.Length; s++)
            {
                hidden[s] = new float[seqLen * d];
                model.Embed(calibration.Samples[s], hidden[s]);
            }
            scratch = new ForwardScratch(config);
            scratch.EnsureCapacity(seqLen);
        }

        var layers = new List<QuantizedLayer>();
        var reports = new List<LayerReport>();
        for (int l = 0; l < model.Layers.Count; l++)
        {
            var layer = model.Layers[l];
            var linears = layer.Linears;
            var originals = linears.Select(x => x.Weight).ToArray();
            void Quantize(LinearLayer linear, float[]? hessian)
            {
                if (options.FormatFor(linear.Name, linear.InFeatures) is not { } format) return; // kept as stored
                var (packed, report) = QuantizeLinear(linear, hessian, format, options);
                layers.Add(new QuantizedLayer(linear.Name, packed));
                reports.Add(report);
            }
            try
            {
                if (scratch is null)
                    foreach (var linear in linears)
                        Quantize(linear, null);
                else
                    QuantizeSequentially(layer, hidden, seqLen, scratch, Quantize, ref peakManaged);
            }
            finally
            {
                for (int i = 0; i < linears.Count; i++) linears[i].Weight = originals[i];
            }
            layerDone?.Invoke(l + 1);
        }

        var result = new QuantizationReport
        {
            Method = MethodName(options.Method),
            Format = options.EffectiveFormat.Name,
            Layers = reports,
            CalibrationSamples = calibration?.SampleCount,
            CalibrationSequenceLength = calibration?.SequenceLength,
            Seed = calibration?.Seed,
            WallSeconds = clock.Elapsed.TotalSeconds,
            PeakWorkingSetBytes = Process.GetCurrentProcess().PeakWorkingSet64,
            PeakManagedBytes = peakManaged,
        };
        return new QuantizationResult(layers, result);
    }

    /// <summary>Lower-case method name as used on the command line and in reports.</summary>
    public static string MethodName(QuantMethod method) => method switch
    {
        QuantMethod.Gptq => "gptq",
        QuantMethod.Higgs => "higgs",
        QuantMethod.MrGptq => "mr-gptq",
        _ => "rtn",
    };

    /// <summary>
    /// One layer, true-sequential: each group of linears is quantized on a Hessian of the inputs that the already
    /// quantized groups produce; the samples' hidden states end as the quantized layer's outputs.
    /// </summary>
    private static void QuantizeSequentially(DecoderLayer layer, float[][] hidden, int seqLen, ForwardScratch scratch,
        Action<LinearLayer, float[]?> quantize, ref long peakManaged)
    {
        int n = seqLen, d = layer.QueryProj.InFeatures;
        int attentionWidth = layer.OutputProj.InFeatures, intermediate = layer.DownProj.InFeatures;
        void Load(int s) => hidden[s].CopyTo(scratch.Hidden, 0);
        void Store(int s) => scratch.Hidden.AsSpan(0, n * d).CopyTo(hidden[s]);
        void QuantizeGroup(HessianAccumulator accumulator, params LinearLayer[] group)
        {
            var h = accumulator.GetHessian();
            foreach (var linear in group) quantize(linear, h);
        }

        // q, k, v: Hessian of input_layernorm(x).
        var qkv = new HessianAccumulator(d);
        for (int s = 0; s < hidden.Length; s++)
        {
            Load(s);
            layer.NormalizeAttentionInput(n, scratch);
            qkv.Add(scratch.Normed.AsSpan(0, n * d), n);
        }
        QuantizeGroup(qkv, layer.QueryProj, layer.KeyProj, layer.ValueProj);

        // o: Hessian of the attention outputs computed with the quantized q/k/v; the outputs are kept per sample.
        var o = new HessianAccumulator(attentionWidth);
        var attention = new float[hidden.Length][];
        for (int s = 0; s < hidden.Length; s++)
        {
            Load(s);
            layer.NormalizeAttentionInput(n, scratch);
            layer.Attend(n, 0, scratch);
            o.Add(scratch.Attention.AsSpan(0, n * attentionWidth), n);
            attention[s] = scratch.Attention.AsSpan(0, n * attentionWidth).ToArray();
        }
        peakManaged = Math.Max(peakManaged, GC.GetTotalMemory(false));
        QuantizeGroup(o, layer.OutputProj);

        // gate, up: Hessian of post_attention_layernorm(h), h = x + o_proj(attention) with the quantized o.
        var mlp = new HessianAccumulator(d);
        for (int s = 0; s < hidden.Length; s++)
        {
            Load(s);
            attention[s].CopyTo(scratch.Attention, 0);
            attention[s] = null!; // release as we go
            layer.ProjectAttentionOutput(n, scratch);
            Store(s);
            layer.NormalizeMlpInput(n, scratch);
            mlp.Add(scratch.Normed.AsSpan(0, n * d), n);
        }
        QuantizeGroup(mlp, layer.GateProj, layer.UpProj);

        // down: Hessian of silu(gate)·up from the quantized gate/up; activations kept while they fit the budget.
        var down = new HessianAccumulator(intermediate);
        bool keep = (long)hidden.Length * n * intermediate * sizeof(float) <= ActivationBudgetBytes;
        var activations = keep ? new float[hidden.Length][] : null;
        for (int s = 0; s < hidden.Length; s++)
        {
            Load(s);
            layer.NormalizeMlpInput(n, scratch);
            layer.ActivateMlp(n, scratch);
            down.Add(scratch.Gate.AsSpan(0, n * intermediate), n);
            if (activations is not null) activations[s] = scratch.Gate.AsSpan(0, n * intermediate).ToArray();
        }
        peakManaged = Math.Max(peakManaged, GC.GetTotalMemory(false));
        QuantizeGroup(down, layer.DownProj);

        // The layer's outputs with every linear quantized: the next layer's inputs.
        for (int s = 0; s < hidden.Length; s++)
        {
            Load(s);
            if (activations is not null)
            {
                activations[s].CopyTo(scratch.Gate, 0);
                activations[s] = null!;
            }
            else
            {
                layer.NormalizeMlpInput(n, scratch);
                layer.ActivateMlp(n, scratch);
            }
            layer.ProjectMlpOutput(n, scratch);
            Store(s);
        }
    }

    // Quantizes one linear and swaps its dequantized FP32 weight in: in the original basis, or for a rotating format in
    // the rotated basis with the matching online input rotation (as the quantized checkpoint is run later).
    private static (PackedWeight Packed, LayerReport Report) QuantizeLinear(LinearLayer linear, float[]? hessian, QuantFormat format,
        QuantizeOptions options)
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
                    LayerName = linear.Name,
                });
                packed = gptq.Packed;
                dequantized = gptq.Dequantized;
            }
            else
            {
                packed = format.Quantize(weight, rows, cols, options.EffectiveScaleSearch);
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
}
