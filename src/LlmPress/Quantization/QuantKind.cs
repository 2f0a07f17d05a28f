namespace LlmPress.Quantization;

/// <summary>The weight number formats (see <see cref="QuantFormat"/>).</summary>
public enum QuantKind
{
    /// <summary>b-bit integers with FP16 scales (and b-bit zero points when asymmetric) per group: GPTQ / RTN.</summary>
    Int,
    /// <summary>OCP MXFP4: FP4 E2M1 elements, an E8M0 scale per 32 elements.</summary>
    Mxfp4,
    /// <summary>NVIDIA NVFP4: FP4 E2M1 elements, an FP8 E4M3 scale per 16 elements, one FP32 scale per tensor.</summary>
    Nvfp4,
    /// <summary>HIGGS: Hadamard-rotated, RMS-normalized vectors of p weights rounded to an n-point Gaussian-optimal grid.</summary>
    Higgs,
}
