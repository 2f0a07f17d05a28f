namespace LlmPress.Models;

/// <summary>Kinds of RoPE frequency scaling that LlmPress implements (config.json "rope_scaling").</summary>
public enum RopeScalingType
{
    /// <summary>Plain RoPE: inv_freq[i] = θ^(-2i/d).</summary>
    None,
    /// <summary>Position interpolation: every frequency divided by <see cref="RopeScaling.Factor"/>.</summary>
    Linear,
    /// <summary>Llama 3.1: low frequencies divided by the factor, high ones kept, a smooth ramp between.</summary>
    Llama3,
}

/// <param name="Type">Which scaling rule applies.</param>
/// <param name="Factor">Frequency divisor (Linear, Llama3).</param>
/// <param name="LowFreqFactor">Llama3: wavelengths longer than original/low are fully scaled.</param>
/// <param name="HighFreqFactor">Llama3: wavelengths shorter than original/high are kept.</param>
/// <param name="OriginalMaxPositions">Llama3: the context length the model was pretrained with.</param>
public sealed record RopeScaling(
    RopeScalingType Type,
    double Factor = 1,
    double LowFreqFactor = 1,
    double HighFreqFactor = 4,
    int OriginalMaxPositions = 8192)
{
    public static RopeScaling NoScaling { get; } = new(RopeScalingType.None);
}
