namespace LlmPress.Quantization.Pipeline;

/// <summary>One quantized linear layer: its module name (the weight is Name + ".weight") and packed weight.</summary>
public sealed record QuantizedLayer(string Name, PackedWeight Weight);
