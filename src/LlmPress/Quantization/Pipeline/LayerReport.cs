namespace LlmPress.Quantization.Pipeline;

/// <summary>What compressing (quantizing and/or pruning) one linear layer did.</summary>
/// <param name="Name">Module name, e.g. "model.layers.3.mlp.down_proj" (the weight is Name + ".weight").</param>
/// <param name="Rows">Output features.</param>
/// <param name="Cols">Input features.</param>
/// <param name="Format">Canonical format name; for a pruned layer stored unquantized, its storage layout ("f32", "bf16",
/// "sparse-24-bitmask-bf16", ...).</param>
/// <param name="BitsPerWeight">Actual storage bits per weight (<see cref="PackedWeight.BitsPerWeight"/>).</param>
/// <param name="RelativeWeightError">‖W − Ŵ‖²/‖W‖².</param>
/// <param name="RelativeOutputError">tr(ΔW·H·ΔWᵀ)/tr(W·H·Wᵀ) on the calibration inputs, null without calibration data.
/// Both errors compare the source weight with the weight as stored (dequantized, or rounded to the stored dtype).</param>
/// <param name="Seconds">Wall time of this layer's quantization.</param>
/// <param name="BytesBefore">Bytes of the weight as stored in the source checkpoint.</param>
/// <param name="BytesAfter">Bytes of the packed tensors.</param>
/// <param name="Sparsity">Pruning: the target pattern ("0.5", "2:4"); null when not pruned.</param>
/// <param name="PrunedWeights">Pruning: the number of pruned (exactly zero) weights; null when not pruned.</param>
/// <param name="Iterations">Pruning with an iterative method (iobs): iterations run; null otherwise.</param>
public sealed record LayerReport(string Name, int Rows, int Cols, string Format, double BitsPerWeight, double RelativeWeightError,
    double? RelativeOutputError, double Seconds, long BytesBefore, long BytesAfter, string? Sparsity = null, long? PrunedWeights = null,
    int? Iterations = null)
{
    /// <summary>Achieved sparsity: <see cref="PrunedWeights"/> / (Rows · Cols); null when not pruned.</summary>
    public double? AchievedSparsity => PrunedWeights is { } z ? (double)z / Math.Max(1L, (long)Rows * Cols) : null;
}
