namespace LlmPress.Numerics;

/// <summary>How a <see cref="QuantizedMatrix"/>'s one-byte scale codes stand for FP32 scales.</summary>
public enum ScaleCoding
{
    /// <summary>MXFP4: E8M0, 2^(code − 127).</summary>
    E8M0,

    /// <summary>NVFP4: E4M3 ÷ a per-matrix divisor (the global scale).</summary>
    E4M3,
}
