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
    /// <summary>
    /// MR-GPTQ (micro-rotated GPTQ, FP-Quant): a block-diagonal Hadamard rotation of every linear's input dimension,
    /// fused into the stored weights and applied to activations online, then GPTQ on the rotated Hessian with the MSE
    /// scale search and static activation ordering. Meant for MXFP4/NVFP4; needs calibration data.
    /// </summary>
    MrGptq,
}
