namespace LlmPress.Export;

/// <summary>One quantized linear of the source and what the export made of it.</summary>
/// <param name="Module">Module name, e.g. "model.layers.0.self_attn.q_proj".</param>
/// <param name="SourceFormat">LlmPress format name, e.g. "int4-asym-g128".</param>
/// <param name="Scheme">The compressed-tensors scheme it is stored in, or null when written dense (<see cref="CompressedTensorsExportOptions.DenseFallback"/>).</param>
/// <param name="Detail">In words: the scheme, or why the layer is dense.</param>
public sealed record CompressedTensorsLayerReport(string Module, string SourceFormat, CompressedTensorsScheme? Scheme, string Detail);

/// <summary>What <see cref="CompressedTensorsExporter.Export"/> wrote and checked.</summary>
/// <param name="Directory">The output directory.</param>
/// <param name="Bytes">Size of its safetensors files.</param>
/// <param name="Format">quantization_config.format ("pack-quantized", ..., or "mixed-precision"); "dense" when every layer was written dense and config.json has no quantization_config.</param>
/// <param name="Layers">Every quantized linear of the source, in checkpoint order.</param>
/// <param name="CopiedTensors">Tensors copied as stored (embeddings, norms, unquantized linears).</param>
/// <param name="Ignore">quantization_config.ignore.</param>
/// <param name="Warnings">Things the user should know about serving the result.</param>
/// <param name="Verified">Whether the directory was read back and checked (<see cref="CompressedTensorsExportOptions.Verify"/>).</param>
/// <param name="Seconds">Wall time.</param>
public sealed record CompressedTensorsExportReport(string Directory, long Bytes, string Format, IReadOnlyList<CompressedTensorsLayerReport> Layers,
    int CopiedTensors, IReadOnlyList<string> Ignore, IReadOnlyList<string> Warnings, bool Verified, double Seconds);
