namespace LlmPress.Quantization.Pipeline;

/// <summary>Summary of a <see cref="QuantizationPipeline"/> (or pruning) run; written as report.json / report.md by <see cref="QuantizationReportWriter"/>.</summary>
public sealed record QuantizationReport
{
    public required string Method { get; init; }
    public required string Format { get; init; }
    /// <summary>Pruning runs: the default sparsity pattern ("0.5", "2:4"); null for quantization only.</summary>
    public string? Sparsity { get; init; }
    /// <summary>Pruned weights over all layers (null when nothing was pruned).</summary>
    public long? PrunedWeights => Sparsity is null ? null : Layers.Sum(l => l.PrunedWeights ?? 0);
    /// <summary>Pruned fraction of the compressed layers' weights (null when nothing was pruned).</summary>
    public double? AchievedSparsity => PrunedWeights is { } z ? z / Math.Max(1.0, Layers.Sum(l => (double)l.Rows * l.Cols)) : null;
    public required IReadOnlyList<LayerReport> Layers { get; init; }
    /// <summary>Calibration windows × tokens, or null when none was used.</summary>
    public int? CalibrationSamples { get; init; }
    public int? CalibrationSequenceLength { get; init; }
    public int? Seed { get; init; }
    /// <summary>Bytes of the quantized layers' weights before (as stored) and after (packed).</summary>
    public long QuantizedBytesBefore => Layers.Sum(l => l.BytesBefore);
    public long QuantizedBytesAfter => Layers.Sum(l => l.BytesAfter);
    /// <summary>Bytes of all tensors of the checkpoint before and after (filled in when the checkpoint is written).</summary>
    public long TotalBytesBefore { get; init; }
    public long TotalBytesAfter { get; init; }
    /// <summary>Storage bits per weight over all quantized layers (weighted by their sizes).</summary>
    public double AverageBitsPerWeight
    {
        get
        {
            double weights = Layers.Sum(l => (double)l.Rows * l.Cols);
            return weights == 0 ? 0 : QuantizedBytesAfter * 8.0 / weights;
        }
    }
    public double WallSeconds { get; init; }
    /// <summary>Process peak working set in bytes (Process.PeakWorkingSet64).</summary>
    public long PeakWorkingSetBytes { get; init; }
    /// <summary>Largest managed heap size seen by the GC in bytes.</summary>
    public long PeakManagedBytes { get; init; }
}
