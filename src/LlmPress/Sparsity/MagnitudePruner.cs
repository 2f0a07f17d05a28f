using LlmPress.Quantization;

namespace LlmPress.Sparsity;

/// <summary>
/// Magnitude pruning (SparseGPT's "--gmp" baseline): zero the weights with the smallest |w| — across the whole layer for
/// unstructured sparsity, within each group of M inputs of a row for N:M. Data-free; the kept weights are unchanged.
/// </summary>
public static class MagnitudePruner
{
    /// <summary>Prunes W [rows, cols] (row-major, Hugging Face [out, in]) to the pattern.</summary>
    /// <exception cref="ArgumentException">Wrong length, a NaN/∞ weight, or a pattern that does not fit cols.</exception>
    public static PruneResult Prune(ReadOnlySpan<float> weight, int rows, int cols, SparsityPattern pattern, string? layer = null)
    {
        PruneChecks.Weight(weight, rows, cols, layer);
        pattern.CheckFits(cols, layer);
        var scores = new float[weight.Length];
        for (int i = 0; i < weight.Length; i++) scores[i] = Math.Abs(weight[i]);
        var pruned = new bool[weight.Length];
        if (pattern.IsNOfM) MaskSelection.MarkNOfM(scores, pattern.N, pattern.M, pruned);
        else MaskSelection.MarkSmallest(scores, pattern.ZeroCount(rows, cols), pruned);
        return new PruneResult(PruneChecks.Apply(weight, pruned), pruned, rows, cols);
    }
}
