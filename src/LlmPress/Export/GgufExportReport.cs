using LlmPress.Gguf;

namespace LlmPress.Export;

/// <summary>How a tensor got its GGUF data.</summary>
public enum GgufTensorMapping
{
    /// <summary>Floating-point values written without rounding (same or wider type).</summary>
    Lossless,
    /// <summary>Floating-point values rounded to the target type (F16, BF16, or a ggml block quantizer).</summary>
    Converted,
    /// <summary>An LlmPress quantized layer whose grid is a GGUF type: codes and scales copied, no re-quantization.</summary>
    Exact,
    /// <summary>An LlmPress quantized layer without an exact GGUF type: dequantized, then converted.</summary>
    Requantized,
}

/// <summary>One written tensor.</summary>
/// <param name="Name">GGUF name.</param>
/// <param name="Source">Checkpoint name it came from.</param>
/// <param name="Type">GGUF type written.</param>
/// <param name="Shape">Row-major shape.</param>
/// <param name="Mapping">How.</param>
/// <param name="Detail">In words, e.g. "int4-sym-g32 → q4_0 (codes and scales copied)".</param>
public sealed record GgufTensorReport(string Name, string Source, GgmlType Type, long[] Shape, GgufTensorMapping Mapping, string Detail);

/// <summary>What <see cref="GgufExporter.Export"/> wrote and checked.</summary>
/// <param name="Path">The GGUF file.</param>
/// <param name="Bytes">Its size.</param>
/// <param name="Architecture">general.architecture.</param>
/// <param name="Tensors">Every tensor, in file order.</param>
/// <param name="Warnings">Things the user should know (no tokenizer, dropped settings, ...).</param>
/// <param name="Verified">Whether the file was read back and checked (<see cref="GgufExportOptions.Verify"/>).</param>
/// <param name="Seconds">Wall time.</param>
public sealed record GgufExportReport(string Path, long Bytes, string Architecture, IReadOnlyList<GgufTensorReport> Tensors,
    IReadOnlyList<string> Warnings, bool Verified, double Seconds);
