namespace LlmPress.Models;

/// <summary>
/// Whether single-token (decode) products with packed weights take the activation quantized — 4-bit weights: int8 per
/// 32 columns (llama.cpp's Q8 scheme); 8-bit weights: int16 per 128 columns — or exactly in FP32
/// (<see cref="Numerics.Gemm.MultiplyByQuantized"/>). Multi-token forwards (prefill, perplexity, calibration) are always
/// exact.
/// </summary>
/// <remarks>
/// On (the default) because decode is instruction-bound on the FP32-activation kernels: the int8 one is ~3× leaner for
/// an error per activation of at most 0.4% of its block's max|x|, the int16 one (8-bit weights) ~18–23% faster
/// (`bench … int8-head`) for at most 0.0015%. The setting is process-wide; <see cref="Override"/>
/// changes it for the calling thread only (tests, comparisons).
/// </remarks>
public static class DecodeActivations
{
    [ThreadStatic] private static bool? t_override;

    /// <summary>Process-wide: true (default) for int8 decode activations, false for exact FP32.</summary>
    public static bool Int8 { get; set; } = true;

    /// <summary>Overrides <see cref="Int8"/> for calls made from this thread (null: use the process-wide setting).</summary>
    public static bool? Override
    {
        get => t_override;
        set => t_override = value;
    }

    /// <summary>Whether a forward of <paramref name="tokenCount"/> tokens from this thread takes int8 activations.</summary>
    internal static bool AppliesTo(int tokenCount) => tokenCount == 1 && (t_override ?? Int8);
}
