using LlmPress.Models;

namespace LlmPress.Quantization.Pipeline;

/// <summary>One linear layer as the plan sees it.</summary>
/// <param name="BytesBefore">Stored size now (its dtype).</param>
/// <param name="BytesAfter">Packed size in the target format (codes + scales).</param>
/// <param name="Format">The layer's format name (rotation blocks fitted to the layer).</param>
public sealed record PlannedLayer(string Name, int Rows, int Cols, string Format, double BitsPerWeight, long BytesBefore, long BytesAfter);

/// <summary>
/// What a quantize run will do and roughly what it will cost, computed before any work (`quantize --dry-run`):
/// the layers and their formats, the output size, the peak memory and a time estimate. Sizes are exact up to file
/// headers; memory and time are estimates from the run's shapes (time assumes <see cref="AssumedGflops"/>).
/// </summary>
public sealed record QuantizationPlan
{
    /// <summary>Sustained GFLOP/s assumed for the calibration passes and Hessians (what this project measures on 2 Zen 4 cores).</summary>
    public const double AssumedGflops = 150;

    /// <summary>The .NET runtime, JIT and tokenizer before any tensor is touched (measured: ~60–80 MB working set).</summary>
    public const long RuntimeBytes = 64L << 20;

    public required string Method { get; init; }
    public required string Format { get; init; }
    public required IReadOnlyList<PlannedLayer> Layers { get; init; }
    public int? CalibrationSamples { get; init; }
    public int? CalibrationSequenceLength { get; init; }
    /// <summary>Bytes of every tensor in the input checkpoint.</summary>
    public required long CheckpointBytes { get; init; }
    /// <summary>Tensor bytes of the output: untouched tensors as stored plus the packed layers.</summary>
    public required long OutputBytes { get; init; }
    /// <summary>Runtime + mapped checkpoint + calibration activations held in RAM + one layer's working set (FP32 weights, Hessians, scratch).</summary>
    public required long EstimatedPeakBytes { get; init; }
    public required double EstimatedSeconds { get; init; }

    /// <summary>The memory budget the plan was made for (--max-memory), or null for no limit.</summary>
    public long? MaxMemoryBytes { get; init; }
    /// <summary>Calibration hidden states [samples, seqLen, hidden] in FP32.</summary>
    public long HiddenStateBytes { get; init; }
    /// <summary>Per-sample stage outputs [samples, seqLen, max(attention width, intermediate)] in FP32.</summary>
    public long StageBytes { get; init; }
    /// <summary>True when the hidden states go to a spill file (they do not fit <see cref="MaxMemoryBytes"/>).</summary>
    public bool HiddenStatesSpilled { get; init; }
    /// <summary>True when the stage outputs go to a spill file (spilled first: they are read and written less often).</summary>
    public bool StageOutputsSpilled { get; init; }
    /// <summary>Bytes of calibration activations written to spill files instead of RAM.</summary>
    public long SpilledBytes => (HiddenStatesSpilled ? HiddenStateBytes : 0) + (StageOutputsSpilled ? StageBytes : 0);

    public long QuantizedBytesBefore => Layers.Sum(l => l.BytesBefore);
    public long QuantizedBytesAfter => Layers.Sum(l => l.BytesAfter);
    public double AverageBitsPerWeight => 8.0 * QuantizedBytesAfter / Math.Max(1, Layers.Sum(l => (long)l.Rows * l.Cols));

    /// <param name="model">The model to quantize.</param>
    /// <param name="options">Method and format.</param>
    /// <param name="samples">Calibration windows (null: no calibration).</param>
    /// <param name="sequenceLength">Tokens per calibration window.</param>
    /// <param name="maxMemoryBytes">
    /// Budget for the process's own memory (runtime, one layer's working set, calibration activations; the mapped
    /// checkpoint is not counted: its pages are file-backed and the OS evicts them as needed). Activations that do not
    /// fit are spilled to disk, stage outputs first. Null: no limit, everything in RAM.
    /// </param>
    public static QuantizationPlan Create(LlamaModel model, QuantizeOptions options, int? samples, int? sequenceLength,
        long? maxMemoryBytes = null)
    {
        options.Validate();
        var layers = new List<PlannedLayer>();
        foreach (var layer in model.Layers)
            foreach (var linear in layer.Linears)
            {
                int rows = linear.OutFeatures, cols = linear.InFeatures;
                if (options.FormatFor(linear.Name, cols) is not { } format) continue; // kept as stored
                double bits = format.BitsPerWeight(cols);
                layers.Add(new PlannedLayer(linear.Name, rows, cols, format.Name, bits, linear.Weight.Data.Length,
                    (long)Math.Ceiling(bits * rows * cols / 8)));
            }
        var head = model.LmHead;
        if (options.LmHeadFormatFor(head.InFeatures) is { } headFormat)
        {
            // A tied head adds its packed tensors (the embedding stays); an untied one is replaced.
            double bits = headFormat.BitsPerWeight(head.InFeatures);
            long stored = model.Config.TieWordEmbeddings ? 0 : head.Weight.Data.Length;
            layers.Add(new PlannedLayer(head.Name, head.OutFeatures, head.InFeatures, headFormat.Name, bits, stored,
                (long)Math.Ceiling(bits * head.OutFeatures * head.InFeatures / 8)));
        }
        var plan = Create(model, QuantizationPipeline.MethodName(options.Method), options.EffectiveFormat.Name, layers, options.UsesGptq,
            samples, sequenceLength, maxMemoryBytes);
        // The head is rounded after the last layer, from an FP32 copy beside its dequantized values.
        long headWorkingSet = options.LmHeadFormat is null ? 0 : 2L * head.OutFeatures * head.InFeatures * sizeof(float);
        return plan with { EstimatedPeakBytes = Math.Max(plan.EstimatedPeakBytes, RuntimeBytes + plan.CheckpointBytes + headWorkingSet) };
    }

    /// <summary>
    /// The plan of any layer-by-layer compression (quantization, pruning) of <paramref name="model"/> whose compressed
    /// linears are <paramref name="layers"/>: output size, memory (and what spills under the budget) and time.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="method">Method name for the report.</param>
    /// <param name="format">Format name for the report.</param>
    /// <param name="layers">The linears that get compressed, with their sizes before and after.</param>
    /// <param name="solvesHessian">True when every layer runs a GPTQ-style Cholesky solve and block updates (time estimate).</param>
    /// <param name="samples">Calibration windows (null: no calibration).</param>
    /// <param name="sequenceLength">Tokens per calibration window.</param>
    /// <param name="maxMemoryBytes">Memory budget, as in the other overload.</param>
    public static QuantizationPlan Create(LlamaModel model, string method, string format, IReadOnlyList<PlannedLayer> layers,
        bool solvesHessian, int? samples, int? sequenceLength, long? maxMemoryBytes = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(layers);
        var c = model.Config;
        long checkpoint = model.Store?.TotalBytes ?? 0;
        long before = layers.Sum(l => l.BytesBefore), after = layers.Sum(l => l.BytesAfter);

        // One decoder layer's working set: its linears in FP32 (original and dequantized), Hessian accumulators
        // (double) and their FP32 copies, and the forward scratch for one window.
        long layerFloats = 0, hessianBytes = 0, scratchBytes = 0, hiddenBytes = 0, stageBytes = 0;
        var first = model.Layers.Count > 0 ? model.Layers[0] : null;
        if (first is not null)
            foreach (var linear in first.Linears)
                layerFloats += (long)linear.InFeatures * linear.OutFeatures;
        double seconds = 0;
        if (samples is { } n && sequenceLength is { } t)
        {
            long tokens = (long)n * t;
            // Hidden states, plus the per-sample stage outputs the true-sequential schedule keeps: attention outputs,
            // then (in the same store, the attention outputs being consumed by then) the MLP activations.
            hiddenBytes = tokens * c.HiddenSize * sizeof(float);
            stageBytes = tokens * Math.Max(c.QueryDim, c.IntermediateSize) * sizeof(float);
            foreach (int cols in new[] { c.HiddenSize, c.QueryDim, c.HiddenSize, c.IntermediateSize })
                hessianBytes += (long)cols * cols * (sizeof(double) + 2 * sizeof(float));
            scratchBytes = (long)t * (4L * c.HiddenSize + 2L * c.QueryDim + 2L * c.KvDim + 2L * c.IntermediateSize) * sizeof(float)
                           + 2L * 256 * t * sizeof(float); // attention scores, one block per thread

            // One forward pass per layer: 2 flops per weight and token, plus attention.
            double perTokenLayer = 2.0 * layerFloats + 4.0 * c.QueryDim * t / 2;
            double forward = tokens * perTokenLayer * c.LayerCount;
            double hessian = 0;
            foreach (int cols in new[] { c.HiddenSize, c.QueryDim, c.HiddenSize, c.IntermediateSize })
                hessian += (double)tokens * cols * cols * c.LayerCount;
            seconds = (forward + hessian) / (AssumedGflops * 1e9);
        }
        long layerBytes = 2 * layerFloats * sizeof(float) + hessianBytes + scratchBytes;
        bool spillStages = false, spillHidden = false;
        if (maxMemoryBytes is { } budget)
        {
            long available = budget - RuntimeBytes - layerBytes;
            spillStages = hiddenBytes + stageBytes > available && stageBytes > 0;
            spillHidden = hiddenBytes > available && hiddenBytes > 0;
        }
        long activationBytes = (spillHidden ? 0 : hiddenBytes) + (spillStages ? 0 : stageBytes);
        if (solvesHessian)
            foreach (var l in layers) // Cholesky-based inverse and the lazy block updates
                seconds += (2.0 * l.Cols * l.Cols * l.Cols + 2.0 * l.Rows * l.Cols * l.Cols) / (AssumedGflops * 1e9);
        else
            seconds += layers.Sum(l => (double)l.Rows * l.Cols) * 20 / 1e9; // RTN/HIGGS: a few ns per weight

        return new QuantizationPlan
        {
            Method = method,
            Format = format,
            Layers = layers,
            CalibrationSamples = samples,
            CalibrationSequenceLength = sequenceLength,
            CheckpointBytes = checkpoint,
            OutputBytes = checkpoint - before + after,
            EstimatedPeakBytes = RuntimeBytes + checkpoint + activationBytes + layerBytes,
            EstimatedSeconds = seconds,
            MaxMemoryBytes = maxMemoryBytes,
            HiddenStateBytes = hiddenBytes,
            StageBytes = stageBytes,
            HiddenStatesSpilled = spillHidden,
            StageOutputsSpilled = spillStages,
        };
    }
}
