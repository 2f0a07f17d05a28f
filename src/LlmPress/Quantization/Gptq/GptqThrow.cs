using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;

namespace LlmPress.Quantization;

/// <summary>Exceptions of the GPTQ core; messages start with the layer name when one was given.</summary>
[StackTraceHidden]
internal static class GptqThrow
{
    public static string Prefix(string? layer, string method = "GPTQ") => string.IsNullOrEmpty(layer) ? method : $"{method}, layer '{layer}'";

    [DoesNotReturn]
    public static void Argument_Length(string? layer, string name, string shape, long needed, int actual) =>
        throw new ArgumentException($"{Prefix(layer)}: {name} has {actual} elements but {shape} needs {needed}.", name);

    [DoesNotReturn]
    public static void Argument_WeightNonFinite(string? layer, int row, int column, float value) =>
        throw new ArgumentException(
            $"{Prefix(layer)}: weight[{row}, {column}] is {value}; GPTQ needs finite weights. HINT: check the checkpoint or the previous compression step.",
            "weight");

    [DoesNotReturn]
    public static void Argument_HessianNonFinite(string? layer, int row, int column, float value) =>
        throw new ArgumentException(
            $"{Prefix(layer)}: hessian[{row}, {column}] is {value}; the Hessian must be finite. " +
            "HINT: a NaN/∞ calibration activation reached the accumulator (HessianAccumulator.Add rejects them), or the sum overflowed.",
            "hessian");

    [DoesNotReturn]
    public static void Argument_HessianNotPositive(string? layer, double meanDiagonal, string method = "GPTQ") =>
        throw new ArgumentException(
            $"{Prefix(layer, method)}: the mean diagonal of the Hessian is {meanDiagonal} after dead columns were set to 1; " +
            "a Hessian 2/N·Σxxᵀ has a non-negative diagonal. HINT: pass the accumulated Hessian, not its inverse or a difference.",
            "hessian");

    [DoesNotReturn]
    public static void Argument_NotPositiveDefinite(string? layer, int attempts, double dampPercent, int column, string method = "GPTQ") =>
        throw new ArgumentException(
            $"{Prefix(layer, method)}: H + λI is not positive definite even with λ = {dampPercent:G3} × mean(diag H) " +
            $"after {attempts} attempts (last failure at stored column {column}). The Hessian is not positive semidefinite. " +
            $"HINT: check the Hessian for corruption, or raise {(method == "GPTQ" ? "GptqOptions." : "")}MaxDampRetries.",
            "hessian");

    public static ArgumentException InLayer(string layer, ArgumentException inner) =>
        new($"{Prefix(layer)}: {inner.Message}", inner.ParamName, inner);

    [DoesNotReturn]
    public static void ArgumentOutOfRange_Option(string name, object value, string requirement) =>
        throw new ArgumentOutOfRangeException(name, value, $"GptqOptions.{name} {requirement}.");

    [DoesNotReturn]
    public static void Argument_TokenNonFinite(long token, int column, float value) =>
        throw new ArgumentException(
            $"Hessian accumulation: activation x[{token}, {column}] (token {token} of this batch) is {value}; calibration inputs must be finite. " +
            "HINT: the model overflowed on this sample (e.g. FP16 activations); run the calibration forward pass in FP32/BF16.",
            "x");

    [DoesNotReturn]
    public static void InvalidOperation_NoTokens() =>
        throw new InvalidOperationException("The Hessian is undefined before any tokens were added (HessianAccumulator.Add).");
}
