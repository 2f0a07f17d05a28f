namespace LlmPress.Sparsity;

/// <summary>
/// Wanda (Sun, Liu, Bair, Kolter, "A Simple and Effective Pruning Approach for Large Language Models", arXiv 2306.11695):
/// prune the weights with the smallest |w_ij|·‖x_j‖₂, compared within each output row (N:M: within each group of M), and
/// leave the kept weights unchanged. ‖x_j‖₂ = √(N/2 · H_jj) for H = 2/N·Σxxᵀ; the constant factor does not change the
/// order, so the score is |w_ij|·√H_jj (only the Hessian's diagonal is read).
/// </summary>
public static class WandaPruner
{
    /// <summary>Prunes W [rows, cols]: unstructured, round(fraction·cols) per row (half to even, so rows·that in the layer); N:M, N per group of M.</summary>
    /// <param name="weight">[rows, cols] row-major, Hugging Face [out, in].</param>
    /// <param name="rows">Output features.</param>
    /// <param name="cols">Input features.</param>
    /// <param name="hessian">[cols, cols], H = 2/N·Σxxᵀ of the layer inputs; only the diagonal is read.</param>
    /// <param name="pattern">Unstructured fraction or N:M.</param>
    /// <param name="layer">Name for error messages; optional.</param>
    /// <exception cref="ArgumentException">Wrong lengths, a NaN/∞ weight, a NaN/∞/negative diagonal entry, or a pattern that does not fit.</exception>
    public static PruneResult Prune(ReadOnlySpan<float> weight, int rows, int cols, ReadOnlySpan<float> hessian, SparsityPattern pattern,
        string? layer = null)
    {
        PruneChecks.Weight(weight, rows, cols, layer);
        pattern.CheckFits(cols, layer);
        string where = layer is null ? "" : layer + ": ";
        if (hessian.Length != (long)cols * cols)
            throw new ArgumentException($"{where}hessian has {hessian.Length} elements but [{cols}, {cols}] needs {(long)cols * cols}.", nameof(hessian));
        var norms = new float[cols]; // ∝ ‖x_j‖₂
        for (int j = 0; j < cols; j++)
        {
            float h = hessian[j * cols + j];
            if (!(h >= 0) || float.IsPositiveInfinity(h))
                throw new ArgumentException($"{where}hessian[{j}, {j}] is {h}; a Hessian 2/N·Σxxᵀ has a finite, non-negative diagonal.", nameof(hessian));
            norms[j] = MathF.Sqrt(h);
        }

        var scores = new float[weight.Length];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < cols; j++) scores[r * cols + j] = Math.Abs(weight[r * cols + j]) * norms[j];
        var pruned = new bool[weight.Length];
        if (pattern.IsNOfM) MaskSelection.MarkNOfM(scores, pattern.N, pattern.M, pruned);
        else
        {
            long perRow = (long)Math.Round(pattern.Fraction * cols, MidpointRounding.ToEven);
            var keys = new ulong[cols];
            for (int r = 0; r < rows; r++)
                MaskSelection.MarkSmallest(scores.AsSpan(r * cols, cols), perRow, pruned.AsSpan(r * cols, cols), keys);
        }
        return new PruneResult(PruneChecks.Apply(weight, pruned), pruned, rows, cols);
    }
}
