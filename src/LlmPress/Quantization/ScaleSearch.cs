namespace LlmPress.Quantization;

/// <summary>How a group's scale is chosen. The choice is not stored: both give the same storage layout.</summary>
public enum ScaleSearch
{
    /// <summary>From the group's range: GPTQ's min-max for INT, amax / 6 (NVFP4) or the OCP exponent rule (MXFP4).</summary>
    MinMax,
    /// <summary>
    /// GPTQ's MSE search: shrink the min-max range by p = 1 − i/100 (i = 0..79) and keep the scale with the smallest
    /// Σ|Q(x) − x|^2.4, evaluated on the scale as stored (FP16, E8M0 or E4M3). Never worse than <see cref="MinMax"/>
    /// on that criterion; about 80× the work. Not available for HIGGS, whose scale is the block RMS by definition.
    /// </summary>
    Mse,
}
