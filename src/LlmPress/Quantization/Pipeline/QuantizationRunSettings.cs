namespace LlmPress.Quantization.Pipeline;

/// <summary>
/// How <see cref="QuantizationPipeline.Run"/> runs, as opposed to what it computes (<see cref="QuantizeOptions"/>):
/// none of these change the result, so none are part of the <see cref="RunFingerprint"/>.
/// </summary>
public sealed record QuantizationRunSettings
{
    /// <summary>Journal to record finished layers in and to resume from (its finished layers are skipped). Default none.</summary>
    public QuantizationJournal? Journal { get; init; }

    /// <summary>
    /// Memory budget in bytes: calibration activations that do not fit beside the layer working set are spilled to disk
    /// (see <see cref="QuantizationPlan.Create"/>). Default null: no limit, everything in RAM.
    /// </summary>
    public long? MaxMemoryBytes { get; init; }

    /// <summary>Where spill files go. Default: the journal directory, else the system temp directory.</summary>
    public string? SpillDirectory { get; init; }

    /// <summary>Stops the run between calibration passes; the journal keeps the layers finished so far.</summary>
    public CancellationToken CancellationToken { get; init; }
}
