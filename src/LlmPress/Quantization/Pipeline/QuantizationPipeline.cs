using System.Diagnostics;
using LlmPress.Calibration;
using LlmPress.Models;
using LlmPress.Numerics;

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
/// and a rerun skips the recorded layers, giving a bit-identical result.
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
        settings ??= new QuantizationRunSettings();
        var cancel = settings.CancellationToken;
        var journal = settings.Journal;
        if (options.NeedsCalibration && calibration is null)
            throw new ArgumentException($"Method {MethodName(options.Method)} is data-aware and needs calibration text (--calib FILE).");
        var config = model.Config;
        if (calibration is not null && calibration.SequenceLength > config.MaxPositions)
            throw new ArgumentException($"Calibration windows of {calibration.SequenceLength} tokens exceed the model's {config.MaxPositions} positions.");
        if (journal is not null && journal.FinishedLayers > model.Layers.Count)
            throw new InvalidDataException($"{journal.Directory}: the journal records {journal.FinishedLayers} finished layers, the model has {model.Layers.Count}.");

        var clock = Stopwatch.StartNew();
        long peakManaged = GC.GetTotalMemory(false);
        int d = config.HiddenSize;
        int seqLen = calibration?.SequenceLength ?? 0;
        int hiddenFloats = seqLen * d;

        var layers = new List<QuantizedLayer>();
        var reports = new List<LayerReport>();
        int first = 0;
        if (journal is not null)
            for (; first < journal.FinishedLayers; first++)
            {
                var (done, doneReports) = journal.LoadLayer(first);
                var names = model.Layers[first].Linears.Where(x => options.FormatFor(x.Name, x.InFeatures) is not null).ToArray();
                if (done.Count != names.Length || !done.Select(x => x.Name).SequenceEqual(names.Select(x => x.Name)))
                    throw new InvalidDataException($"{journal.Directory}: journal layer {first} holds {string.Join(", ", done.Select(x => x.Name))}, not the model's linears.");
                layers.AddRange(done);
                reports.AddRange(doneReports);
            }

        // hidden: slot s = [seqLen, hidden], the current layer's input for sample s. stages: per-sample stage outputs.
        ActivationStore? hidden = null, stages = null;
        ForwardScratch? scratch = null;
        try
        {
            if (calibration is not null && first < model.Layers.Count)
            {
                var plan = QuantizationPlan.Create(model, options, calibration.SampleCount, seqLen, settings.MaxMemoryBytes);
                string? spillDirectory = settings.SpillDirectory ?? journal?.Directory;
                hidden = ActivationStore.Create(calibration.SampleCount, hiddenFloats, plan.HiddenStatesSpilled, spillDirectory);
                stages = ActivationStore.Create(calibration.SampleCount, (long)seqLen * Math.Max(config.QueryDim, config.IntermediateSize),
                    plan.StageOutputsSpilled, spillDirectory);
                scratch = new ForwardScratch(config);
                scratch.EnsureCapacity(seqLen);
                if (first > 0)
                {
                    if (journal is not { HasHiddenStates: true })
                        throw new InvalidDataException($"{journal?.Directory}: the journal records finished layers but not the next layer's inputs; pass --force to start over.");
                    journal.RestoreHidden(hidden, hiddenFloats);
                }
                else
                    for (int s = 0; s < calibration.SampleCount; s++)
                    {
                        model.Embed(calibration.Samples[s], scratch.Hidden.AsSpan(0, hiddenFloats));
                        hidden.Write(s, scratch.Hidden.AsSpan(0, hiddenFloats));
                    }
                peakManaged = Math.Max(peakManaged, GC.GetTotalMemory(false));
            }
            if (first > 0) layerDone?.Invoke(first);

            for (int l = first; l < model.Layers.Count; l++)
            {
                cancel.ThrowIfCancellationRequested();
                var layer = model.Layers[l];
                var linears = layer.Linears;
                var originals = linears.Select(x => x.Weight).ToArray();
                int layerStart = layers.Count;
                var globalScales = options.ShareNvfp4GlobalScale ? SharedNvfp4GlobalScales(layer, options) : null;
                void Quantize(LinearLayer linear, float[]? hessian)
                {
                    if (options.FormatFor(linear.Name, linear.InFeatures) is not { } format) return; // kept as stored
                    float? globalScale = globalScales is not null && globalScales.TryGetValue(linear, out float g) ? g : null;
                    var (packed, report) = QuantizeLinear(linear, hessian, format, options, globalScale);
                    layers.Add(new QuantizedLayer(linear.Name, packed));
                    reports.Add(report);
                }
                try
                {
                    if (scratch is null)
                        foreach (var linear in linears)
                            Quantize(linear, null);
                    else
                        QuantizeSequentially(layer, hidden!, stages!, seqLen, scratch, Quantize, cancel);
                    peakManaged = Math.Max(peakManaged, GC.GetTotalMemory(false)); // the layer's Hessians and weights still live
                }
                finally
                {
                    for (int i = 0; i < linears.Count; i++) linears[i].Weight = originals[i];
                }
                journal?.RecordLayer(l, layers[layerStart..], reports[layerStart..], hidden, hiddenFloats);
                // A layer leaves ~100 MB of large-object garbage (Hessians, FP32 weight copies) at the 135M shape. The
                // GC sizes its large-object budget by the live large objects — gigabytes of activation stores here —
                // so without a collection that garbage piles up for many layers (measured: +1 GB after 8 layers).
                // One full blocking collection per layer costs milliseconds (the stores hold no references to trace).
                GC.Collect();
                layerDone?.Invoke(l + 1);
            }
        }
        finally
        {
            hidden?.Dispose();
            stages?.Dispose();
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
    /// quantized groups produce; the samples' hidden states end as the quantized layer's outputs. Between passes the
    /// per-sample stage outputs live in <paramref name="stages"/>; the passes themselves allocate nothing per sample.
    /// </summary>
    private static void QuantizeSequentially(DecoderLayer layer, ActivationStore hidden, ActivationStore stages, int seqLen,
        ForwardScratch scratch, Action<LinearLayer, float[]?> quantize, CancellationToken cancel)
    {
        int n = seqLen, d = layer.QueryProj.InFeatures, samples = hidden.SlotCount;
        int attentionWidth = layer.OutputProj.InFeatures, intermediate = layer.DownProj.InFeatures;
        Span<float> Hidden() => scratch.Hidden.AsSpan(0, n * d);
        Span<float> Attention() => scratch.Attention.AsSpan(0, n * attentionWidth);
        Span<float> Activations() => scratch.Gate.AsSpan(0, n * intermediate);
        void QuantizeGroup(HessianAccumulator accumulator, params LinearLayer[] group)
        {
            cancel.ThrowIfCancellationRequested();
            var h = accumulator.GetHessian();
            foreach (var linear in group) quantize(linear, h);
        }

        // q, k, v: Hessian of input_layernorm(x).
        var qkv = new HessianAccumulator(d);
        for (int s = 0; s < samples; s++)
        {
            hidden.Read(s, Hidden());
            layer.NormalizeAttentionInput(n, scratch);
            qkv.Add(scratch.Normed.AsSpan(0, n * d), n);
        }
        QuantizeGroup(qkv, layer.QueryProj, layer.KeyProj, layer.ValueProj);

        // o: Hessian of the attention outputs computed with the quantized q/k/v; the outputs are kept per sample.
        var o = new HessianAccumulator(attentionWidth);
        for (int s = 0; s < samples; s++)
        {
            hidden.Read(s, Hidden());
            layer.NormalizeAttentionInput(n, scratch);
            layer.Attend(n, 0, scratch);
            o.Add(Attention(), n);
            stages.Write(s, Attention());
        }
        QuantizeGroup(o, layer.OutputProj);

        // gate, up: Hessian of post_attention_layernorm(h), h = x + o_proj(attention) with the quantized o.
        var mlp = new HessianAccumulator(d);
        for (int s = 0; s < samples; s++)
        {
            hidden.Read(s, Hidden());
            stages.Read(s, Attention());
            layer.ProjectAttentionOutput(n, scratch);
            hidden.Write(s, Hidden());
            layer.NormalizeMlpInput(n, scratch);
            mlp.Add(scratch.Normed.AsSpan(0, n * d), n);
        }
        QuantizeGroup(mlp, layer.GateProj, layer.UpProj);

        // down: Hessian of silu(gate)·up from the quantized gate/up; the activations replace the attention outputs
        // in the stage store (those were consumed by the pass above).
        var down = new HessianAccumulator(intermediate);
        for (int s = 0; s < samples; s++)
        {
            hidden.Read(s, Hidden());
            layer.NormalizeMlpInput(n, scratch);
            layer.ActivateMlp(n, scratch);
            down.Add(Activations(), n);
            stages.Write(s, Activations());
        }
        QuantizeGroup(down, layer.DownProj);

        // The layer's outputs with every linear quantized: the next layer's inputs.
        for (int s = 0; s < samples; s++)
        {
            hidden.Read(s, Hidden());
            stages.Read(s, Activations());
            layer.ProjectMlpOutput(n, scratch);
            hidden.Write(s, Hidden());
        }
    }

    // Quantizes one linear and swaps its dequantized FP32 weight in: in the original basis, or for a rotating format in
    // the rotated basis with the matching online input rotation (as the quantized checkpoint is run later).
    /// <summary>
    /// NVFP4 per-tensor scales for the linears an engine runs fused — q/k/v and gate/up (one GEMM over concatenated
    /// weights, one global scale: vLLM takes a fused layer's largest-amax shard): each member gets the smallest g of its
    /// group, computed on the stored-basis weights before any of them is quantized (FP-Quant's --fuse_global_scale).
    /// </summary>
    private static Dictionary<LinearLayer, float>? SharedNvfp4GlobalScales(DecoderLayer layer, QuantizeOptions options)
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
}
