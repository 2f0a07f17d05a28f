namespace LlmPress.Quantization.Pipeline;

/// <summary>What <see cref="QuantizationPipeline.Run"/> produced: the packed layers, in model order, and the report.</summary>
public sealed record QuantizationResult(IReadOnlyList<QuantizedLayer> Layers, QuantizationReport Report);
