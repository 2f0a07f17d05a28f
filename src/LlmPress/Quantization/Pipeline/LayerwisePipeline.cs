using System.Diagnostics;
using LlmPress.Calibration;
using LlmPress.Models;
using LlmPress.Numerics;

namespace LlmPress.Quantization.Pipeline;

/// <summary>
/// What <see cref="LayerwisePipeline.Run"/> produced: the compressed linears and their reports, in model order, and
/// when asked for, the Hessian 2/N·Σxxᵀ of the final norm's outputs over the calibration tokens (the lm_head's inputs
/// after every compressed layer; [hidden, hidden]).
/// </summary>
internal sealed record LayerwiseResult(IReadOnlyList<CompressedLinear> Linears, IReadOnlyList<LayerReport> Reports, double WallSeconds,
    long PeakManagedBytes, float[]? FinalHessian = null)
{
    /// <summary>The run's report (peak working set read now, at the end of the run).</summary>
    public QuantizationReport ToReport(string method, string format, Calibration.CalibrationData? calibration, string? sparsity = null) => new()
    {
        Method = method,
        Format = format,
        Sparsity = sparsity,
        Layers = Reports,
        CalibrationSamples = calibration?.SampleCount,
        CalibrationSequenceLength = calibration?.SequenceLength,
        Seed = calibration?.Seed,
        WallSeconds = WallSeconds,
        PeakWorkingSetBytes = System.Diagnostics.Process.GetCurrentProcess().PeakWorkingSet64,
        PeakManagedBytes = PeakManagedBytes,
    };
}

/// <summary>
/// Compresses every decoder-layer linear of a model with an <see cref="ILinearStep"/> (quantization, pruning, or
/// both), one decoder layer at a time, in GPTQ's true-sequential order:
/// <list type="number">
/// <item>embed every calibration sample once: hidden states [samples, seqLen, hidden] stay in an
/// <see cref="ActivationStore"/> (RAM, or a spill file under a memory budget);</item>
/// <item>within a layer, compress the linears group by group in execution order — q/k/v, then o, then gate/up, then
/// down — each group's Hessian accumulated on the inputs produced by the groups already compressed before it, so
/// later linears correct for the earlier ones' errors (gptq.py's --true-sequential);</item>
/// <item>the stage outputs are kept per sample in a second store (attention outputs, later the MLP activations: never
/// live at the same time, so one store of the wider of the two serves both), allocated once per run, so each layer
/// costs one forward pass over the calibration set and allocates nothing per sample;</item>
/// <item>the fully compressed layer's outputs are the next layer's inputs, so errors propagate.</item>
/// </list>
/// Without calibration data no pass runs and no output error is reported. Embeddings and lm_head are left alone. The
/// model is restored to its original weights when the run ends (or fails). With a <see cref="QuantizationJournal"/>,
/// each finished layer is recorded (compressed weights, reports, next layer's inputs) and a rerun skips the recorded
/// layers, giving a bit-identical result.
/// </summary>
internal static class LayerwisePipeline
{
    /// <summary>
    /// Runs <paramref name="step"/> over every decoder layer; see <see cref="QuantizationPipeline.Run"/> for the contract.
    /// <paramref name="finalHessian"/>: with calibration data, also accumulate the Hessian of the final norm's outputs
    /// (for GPTQ on the lm_head), from the journal's last hidden states when every layer was already finished.
    /// </summary>
    public static LayerwiseResult Run(LlamaModel model, ILinearStep step, CalibrationData? calibration, Action<int>? layerDone,
        QuantizationRunSettings? settings, bool finalHessian = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(step);
        settings ??= new QuantizationRunSettings();
        var cancel = settings.CancellationToken;
        var journal = settings.Journal;
        if (step.NeedsCalibration && calibration is null)
            throw new ArgumentException($"Method {step.MethodName} is data-aware and needs calibration text (--calib FILE).");
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

        var layers = new List<CompressedLinear>();
        var reports = new List<LayerReport>();
        int first = 0;
        if (journal is not null)
            for (; first < journal.FinishedLayers; first++)
            {
                var (done, doneReports) = journal.LoadLayer(first);
                var names = model.Layers[first].Linears.Where(step.Applies).ToArray();
                if (done.Count != names.Length || !done.Select(x => x.Name).SequenceEqual(names.Select(x => x.Name)))
                    throw new InvalidDataException($"{journal.Directory}: journal layer {first} holds {string.Join(", ", done.Select(x => x.Name))}, not the model's linears.");
                layers.AddRange(done);
                reports.AddRange(doneReports);
            }

        // hidden: slot s = [seqLen, hidden], the current layer's input for sample s. stages: per-sample stage outputs.
        ActivationStore? hidden = null, stages = null;
        ForwardScratch? scratch = null;
        float[]? headHessian = null;
        try
        {
            if (calibration is not null && (first < model.Layers.Count || finalHessian))
            {
                var plan = step.Plan(model, calibration.SampleCount, seqLen, settings.MaxMemoryBytes);
                string? spillDirectory = settings.SpillDirectory ?? journal?.Directory;
                hidden = ActivationStore.Create(calibration.SampleCount, hiddenFloats, plan.HiddenStatesSpilled, spillDirectory);
                if (first < model.Layers.Count) // only the final Hessian is left when every layer was journaled
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
                step.BeginLayer(layer);
                void Compress(LinearLayer linear, float[]? hessian)
                {
                    if (!step.Applies(linear)) return; // kept as stored
                    var (compressed, report) = step.Compress(linear, hessian);
                    layers.Add(compressed);
                    reports.Add(report);
                }
                try
                {
                    if (scratch is null)
                        foreach (var linear in linears)
                            Compress(linear, null);
                    else
                        CompressSequentially(layer, hidden!, stages!, seqLen, scratch, Compress, cancel);
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
            if (finalHessian && hidden is not null)
            {
                cancel.ThrowIfCancellationRequested();
                var accumulator = new HessianAccumulator(d);
                var normed = scratch!.Normed.AsSpan(0, hiddenFloats);
                for (int s = 0; s < calibration!.SampleCount; s++)
                {
                    hidden.Read(s, scratch.Hidden.AsSpan(0, hiddenFloats));
                    model.FinalNorm.Forward(scratch.Hidden.AsSpan(0, hiddenFloats), seqLen, normed);
                    accumulator.Add(normed, seqLen);
                }
                headHessian = accumulator.GetHessian();
            }
        }
        finally
        {
            hidden?.Dispose();
            stages?.Dispose();
        }
        return new LayerwiseResult(layers, reports, clock.Elapsed.TotalSeconds, peakManaged, headHessian);
    }

    /// <summary>
    /// One layer, true-sequential: each group of linears is compressed on a Hessian of the inputs that the already
    /// compressed groups produce; the samples' hidden states end as the compressed layer's outputs. Between passes the
    /// per-sample stage outputs live in <paramref name="stages"/>; the passes themselves allocate nothing per sample.
    /// </summary>
    private static void CompressSequentially(DecoderLayer layer, ActivationStore hidden, ActivationStore stages, int seqLen,
        ForwardScratch scratch, Action<LinearLayer, float[]?> compress, CancellationToken cancel)
    {
        int n = seqLen, d = layer.QueryProj.InFeatures, samples = hidden.SlotCount;
        int attentionWidth = layer.OutputProj.InFeatures, intermediate = layer.DownProj.InFeatures;
        Span<float> Hidden() => scratch.Hidden.AsSpan(0, n * d);
        Span<float> Attention() => scratch.Attention.AsSpan(0, n * attentionWidth);
        Span<float> Activations() => scratch.Gate.AsSpan(0, n * intermediate);
        void CompressGroup(HessianAccumulator accumulator, params LinearLayer[] group)
        {
            cancel.ThrowIfCancellationRequested();
            var h = accumulator.GetHessian();
            foreach (var linear in group) compress(linear, h);
        }

        // q, k, v: Hessian of input_layernorm(x).
        var qkv = new HessianAccumulator(d);
        for (int s = 0; s < samples; s++)
        {
            hidden.Read(s, Hidden());
            layer.NormalizeAttentionInput(n, scratch);
            qkv.Add(scratch.Normed.AsSpan(0, n * d), n);
        }
        CompressGroup(qkv, layer.QueryProj, layer.KeyProj, layer.ValueProj);

        // o: Hessian of the attention outputs computed with the compressed q/k/v; the outputs are kept per sample.
        var o = new HessianAccumulator(attentionWidth);
        for (int s = 0; s < samples; s++)
        {
            hidden.Read(s, Hidden());
            layer.NormalizeAttentionInput(n, scratch);
            layer.Attend(n, 0, scratch);
            o.Add(Attention(), n);
            stages.Write(s, Attention());
        }
        CompressGroup(o, layer.OutputProj);

        // gate, up: Hessian of post_attention_layernorm(h), h = x + o_proj(attention) with the compressed o.
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
        CompressGroup(mlp, layer.GateProj, layer.UpProj);

        // down: Hessian of silu(gate)·up from the compressed gate/up; the activations replace the attention outputs
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
        CompressGroup(down, layer.DownProj);

        // The layer's outputs with every linear compressed: the next layer's inputs.
        for (int s = 0; s < samples; s++)
        {
            hidden.Read(s, Hidden());
            stages.Read(s, Activations());
            layer.ProjectMlpOutput(n, scratch);
            hidden.Write(s, Hidden());
        }
    }
}
