namespace LlmPress.Quantization.Pipeline;

/// <summary>What quantizing one linear layer did.</summary>
/// <param name="Name">Module name, e.g. "model.layers.3.mlp.down_proj" (the weight is Name + ".weight").</param>
/// <param name="Rows">Output features.</param>
/// <param name="Cols">Input features.</param>
/// <param name="Format">Canonical format name.</param>
/// <param name="BitsPerWeight">Actual storage bits per weight (<see cref="PackedWeight.BitsPerWeight"/>).</param>
/// <param name="RelativeWeightError">‖W − Ŵ‖²/‖W‖².</param>
/// <param name="RelativeOutputError">tr(ΔW·H·ΔWᵀ)/tr(W·H·Wᵀ) on the calibration inputs, null without calibration data.</param>
/// <param name="Seconds">Wall time of this layer's quantization.</param>
/// <param name="BytesBefore">Bytes of the weight as stored in the source checkpoint.</param>
/// <param name="BytesAfter">Bytes of the packed tensors.</param>
public sealed record LayerReport(string Name, int Rows, int Cols, string Format, double BitsPerWeight, double RelativeWeightError,
    double? RelativeOutputError, double Seconds, long BytesBefore, long BytesAfter);
