using System.Diagnostics;

namespace LlmPress.Sparsity;

/// <summary>Argument checks and small helpers shared by the pruners.</summary>
[StackTraceHidden]
internal static class PruneChecks
{
    /// <summary>W has rows·cols finite elements.</summary>
    public static void Weight(ReadOnlySpan<float> weight, int rows, int cols, string? layer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        string where = layer is null ? "" : layer + ": ";
        if (weight.Length != (long)rows * cols)
            throw new ArgumentException($"{where}weight has {weight.Length} elements but [{rows}, {cols}] needs {(long)rows * cols}.", nameof(weight));
        for (int i = 0; i < weight.Length; i++)
            if (!float.IsFinite(weight[i]))
                throw new ArgumentException($"{where}weight[{i / cols}, {i % cols}] is {weight[i]}; pruning needs finite weights.", nameof(weight));
    }

    /// <summary>H is [cols, cols] with a finite lower triangle (the only part the pruners read).</summary>
    public static void Hessian(ReadOnlySpan<float> hessian, int cols, string? layer)
    {
        string where = layer is null ? "" : layer + ": ";
        if (hessian.Length != (long)cols * cols)
            throw new ArgumentException($"{where}hessian has {hessian.Length} elements but [{cols}, {cols}] needs {(long)cols * cols}.", nameof(hessian));
        for (int i = 0; i < cols; i++)
            for (int j = 0; j <= i; j++)
                if (!float.IsFinite(hessian[i * cols + j]))
                    throw new ArgumentException(
                        $"{where}hessian[{i}, {j}] is {hessian[i * cols + j]}; the Hessian must be finite. " +
                        "HINT: a NaN/∞ calibration activation reached the accumulator, or the sum overflowed.", nameof(hessian));
    }

    /// <summary>A copy of W with the pruned entries set to 0.</summary>
    public static float[] Apply(ReadOnlySpan<float> weight, ReadOnlySpan<bool> pruned)
    {
        var result = weight.ToArray();
        for (int i = 0; i < result.Length; i++)
            if (pruned[i]) result[i] = 0f;
        return result;
    }
}
