using LlmPress.Quantization;

namespace LlmPress.Sparsity;

/// <summary>What pruning one linear layer produced.</summary>
public sealed class PruneResult
{
    /// <summary>Creates a result; <paramref name="pruned"/> and <paramref name="weight"/> are [rows, cols] and taken as is.</summary>
    public PruneResult(float[] weight, bool[] pruned, int rows, int cols, PackedWeight? packed = null, IReadOnlyList<double>? errorByIteration = null,
        IReadOnlyList<string>? warnings = null)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(pruned);
        if (weight.LongLength != (long)rows * cols || pruned.LongLength != (long)rows * cols)
            throw new ArgumentException($"weight and mask must both be [{rows}, {cols}].");
        Weight = weight;
        Pruned = pruned;
        Rows = rows;
        Cols = cols;
        Packed = packed;
        ErrorByIteration = errorByIteration ?? [];
        Warnings = warnings ?? [];
        long zeros = 0;
        foreach (bool p in pruned) if (p) zeros++;
        PrunedCount = zeros;
    }

    /// <summary>
    /// The compressed weight, [Rows, Cols], original basis: pruned entries exactly 0, the others possibly changed by
    /// error compensation (and, with quantization, dequantized values — bit-identical to <see cref="Packed"/>'s).
    /// </summary>
    public float[] Weight { get; }

    /// <summary>[Rows, Cols], true where the weight was pruned.</summary>
    public bool[] Pruned { get; }

    /// <summary>Output features.</summary>
    public int Rows { get; }

    /// <summary>Input features.</summary>
    public int Cols { get; }

    /// <summary>Number of pruned weights.</summary>
    public long PrunedCount { get; }

    /// <summary>Pruned fraction of the layer.</summary>
    public double Sparsity => Rows == 0 ? 0 : (double)PrunedCount / ((long)Rows * Cols);

    /// <summary>The quantized weight when pruning and quantization ran jointly; null for a dense FP result.</summary>
    public PackedWeight? Packed { get; }

    /// <summary>
    /// Iterative methods: the relative output error after each iteration (entry 0 = the starting point); empty otherwise.
    /// </summary>
    public IReadOnlyList<double> ErrorByIteration { get; }

    /// <summary>Iterations run by an iterative method (0 for one-shot methods).</summary>
    public int Iterations => Math.Max(0, ErrorByIteration.Count - 1);

    /// <summary>Non-fatal problems (dampening retries), one line each.</summary>
    public IReadOnlyList<string> Warnings { get; }
}
