using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;

namespace LlmPress.Numerics;

/// <summary>Throw helpers for the numeric kernels, so hot methods carry no inline throws.</summary>
[StackTraceHidden]
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void ThrowArgument(string message, string paramName) => throw new ArgumentException(message, paramName);

    [DoesNotReturn]
    public static void ThrowArgumentOutOfRange(string paramName, object value, string message)
        => throw new ArgumentOutOfRangeException(paramName, value, message);

    [DoesNotReturn]
    public static void ThrowUnsupportedWeightType(DType type)
        => throw new ArgumentException($"Weight matrices must be F32, F16 or BF16, not {type}.", "w");

    /// <summary>Checks that a row-major [rows, cols] matrix with leading dimension ld fits in length elements.</summary>
    public static void CheckMatrix(int length, int rows, int cols, int ld, string name)
    {
        if (rows < 0) ThrowArgumentOutOfRange(name, rows, $"{name} has a negative row count.");
        if (cols < 0) ThrowArgumentOutOfRange(name, cols, $"{name} has a negative column count.");
        if (rows == 0 || cols == 0) return;
        if (ld < cols) ThrowArgument($"Leading dimension of {name} is {ld} but the matrix is {cols} wide.", name);
        long needed = (long)(rows - 1) * ld + cols;
        if (length < needed) ThrowArgument($"{name} has {length} elements but [{rows}, {cols}] with leading dimension {ld} needs {needed}.", name);
    }
}
