using LlmPress.Gguf;

namespace LlmPress.Export;

/// <summary>Settings of <see cref="GgufExporter.Export"/>.</summary>
public sealed record GgufExportOptions
{
    /// <summary>
    /// Type of the floating-point weights (linears, token embedding, output head) and of quantized layers that have no
    /// exact GGUF type. Norms, biases and rope_freqs are always F32. Default F16, as llama.cpp's converter.
    /// </summary>
    public GgmlType Type { get; init; } = GgmlType.F16;

    /// <summary>Read the file back and check every tensor before it takes its final name (default on).</summary>
    public bool Verify { get; init; } = true;

    /// <summary>Refuse quantized layers that cannot be written exactly instead of converting them.</summary>
    public bool RequireExact { get; init; }

    /// <summary>tokenizer.json to embed (default: the model directory's); without one the GGUF has no tokenizer.</summary>
    public string? TokenizerPath { get; init; }
}
