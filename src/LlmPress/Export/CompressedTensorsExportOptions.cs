namespace LlmPress.Export;

/// <summary>Settings of <see cref="CompressedTensorsExporter.Export"/>.</summary>
public sealed record CompressedTensorsExportOptions
{
    /// <summary>Read the directory back and check every tensor before it takes its final name (default on).</summary>
    public bool Verify { get; init; } = true;

    /// <summary>
    /// Write quantized layers that compressed-tensors cannot hold (INT2/INT3, HIGGS, rotated formats, groups that do not
    /// divide the columns) as dequantized FP32 weights, listed in quantization_config.ignore, instead of refusing them.
    /// </summary>
    public bool DenseFallback { get; init; }

    /// <summary>Replace an existing output directory.</summary>
    public bool Overwrite { get; init; }
}
