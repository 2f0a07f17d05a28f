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

    /// <summary>A copy of W with the pruned entries set to 0.</summary>
    public static float[] Apply(ReadOnlySpan<float> weight, ReadOnlySpan<bool> pruned)
    {
        var result = weight.ToArray();
        for (int i = 0; i < result.Length; i++)
            if (pruned[i]) result[i] = 0f;
        return result;
    }
}
