namespace LlmPress.Quantization.Pipeline;

/// <summary>How <see cref="QuantizationPipeline"/> picks each weight's codes.</summary>
public enum QuantMethod
{
    /// <summary>Round to nearest, data-free (<see cref="QuantFormat.Quantize"/>).</summary>
    Rtn,
    /// <summary>GPTQ with calibration Hessians (<see cref="Gptq.Quantize"/>); needs calibration data.</summary>
    Gptq,
    /// <summary>HIGGS: Hadamard rotation plus RTN onto a HIGGS grid, data-free; needs a HIGGS format.</summary>
    Higgs,
}
