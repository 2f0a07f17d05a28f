namespace LlmPress.Quantization.Pipeline;

/// <summary>Settings of <see cref="QuantizationPipeline.Run"/>.</summary>
public sealed record QuantizeOptions
{
    /// <summary>Method. Default <see cref="QuantMethod.Rtn"/>.</summary>
    public QuantMethod Method { get; init; } = QuantMethod.Rtn;

    /// <summary>Format of every quantized linear layer. Default int4, asymmetric, groups of 128 (GPTQ's usual setting).</summary>
    public QuantFormat Format { get; init; } = QuantFormat.Int(4, 128, symmetric: false);

    /// <summary>GPTQ: quantize columns by decreasing Hessian diagonal (implies static groups). Default false.</summary>
    public bool ActOrder { get; init; }

    /// <summary>GPTQ dampening as a fraction of mean(diag H). Default 0.01 (gptq.py's percdamp).</summary>
    public double DampPercent { get; init; } = 0.01;

    /// <summary>True when <see cref="Method"/> needs calibration data.</summary>
    public bool NeedsCalibration => Method == QuantMethod.Gptq;

    /// <summary>Checks that method and format fit together.</summary>
    /// <exception cref="ArgumentException">HIGGS method with a non-HIGGS format; bad dampening.</exception>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Format);
        if (Method == QuantMethod.Higgs && Format.Kind != QuantKind.Higgs)
            throw new ArgumentException($"Method higgs needs a HIGGS format (higgs2, higgs3, higgs4), not {Format.Name}.");
        if (!double.IsFinite(DampPercent) || DampPercent < 0)
            throw new ArgumentException($"Dampening must be finite and ≥ 0, not {DampPercent}.");
    }
}
