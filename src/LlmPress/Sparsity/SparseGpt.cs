using LlmPress.Quantization;

namespace LlmPress.Sparsity;

/// <summary>
/// SparseGPT for one linear layer (Frantar &amp; Alistarh, "SparseGPT: Massive Language Models Can Be Accurately Pruned
/// in One-Shot", arXiv 2301.00774), following IST-DASLab sparsegpt.py's <c>fasterprune</c>: GPTQ's column loop where
/// each column's pruned weights are set to 0 (and, jointly, the column quantized) and the error moves onto the columns
/// not yet processed with the OBS update, so that the layer output on the calibration inputs changes little.
/// </summary>
/// <remarks>
/// <para>
/// It runs on GPTQ's machinery (<see cref="Gptq"/>): dead columns (H_ii = 0 → H_ii = 1, W[:, i] = 0), dampening
/// λ = DampPercent·mean(diag H) with ×10 retries, U = upper Cholesky factor of (H + λI)⁻¹, blocks of 128 columns with
/// one trailing GEMM each, and GPTQ's column quantizers with dynamic group scales. What SparseGPT adds is the mask
/// (<see cref="SparseGptMask"/>): per block (unstructured) or per group of M columns (N:M), the smallest OBS
/// saliencies w²/Uⱼⱼ² of the current weights; then q = mask(w) (quantized when joint), ε = (w − q)/Uⱼⱼ.
/// </para>
/// <para>
/// Deviation from sparsegpt.py (deliberate): it prunes exactly `sparsity` of every block (so the layer total drifts by
/// rounding); here each block prunes round(fraction·rows·blockEnd) minus what is already pruned, so the layer has
/// exactly <see cref="SparsityPattern.ZeroCount"/> zeros. Results are bit-identical for any thread count.
/// </para>
/// </remarks>
public static class SparseGpt
{
    internal const string Method = "SparseGPT";

    /// <summary>Prunes (and optionally quantizes) W [rows, cols] to <paramref name="pattern"/>.</summary>
    /// <param name="weight">[rows, cols] row-major, Hugging Face [out, in].</param>
    /// <param name="rows">Output features.</param>
    /// <param name="cols">Input features.</param>
    /// <param name="hessian">[cols, cols], H = 2/N·Σxxᵀ of the layer inputs (<see cref="HessianAccumulator.GetHessian()"/>); only the lower triangle is read.</param>
    /// <param name="pattern">Unstructured fraction or N:M (ignored with <see cref="SparseGptOptions.FixedMask"/>).</param>
    /// <param name="options">Null for the defaults.</param>
    /// <returns>Weight (pruned entries exactly 0; dead columns 0), the mask, Packed when quantizing, dampening warnings.</returns>
    /// <exception cref="ArgumentException">Wrong lengths, NaN/∞ in weight or hessian, a pattern that does not fit, a format
    /// that cannot keep zeros, an invalid option, or a Hessian that stays indefinite; messages name the layer.</exception>
    public static PruneResult Prune(ReadOnlySpan<float> weight, int rows, int cols, ReadOnlySpan<float> hessian, SparsityPattern pattern,
        SparseGptOptions? options = null) => Run(weight, rows, cols, hessian, pattern, options).Result;

    /// <summary>The result and the solver state <see cref="IterativeObs"/> continues from.</summary>
    internal readonly record struct Outcome(PruneResult Result, float[] Factor, double Damping);

    internal static Outcome Run(ReadOnlySpan<float> weight, int rows, int cols, ReadOnlySpan<float> hessian, SparsityPattern pattern,
        SparseGptOptions? options)
    {
        options ??= SparseGptOptions.Default;
        string? layer = options.LayerName;
        CheckOptions(options, rows, cols);
        PruneChecks.Weight(weight, rows, cols, layer);
        PruneChecks.Hessian(hessian, cols, layer);
        if (options.FixedMask is null) pattern.CheckFits(cols, layer);
        var format = options.Format;

        // Joint quantization runs in the original basis, so blocks are whole N:M groups (and GPTQ's pairs never occur).
        int blockSize = Math.Min(options.BlockSize, cols);
        if (options.FixedMask is null && pattern.IsNOfM) blockSize = (blockSize + pattern.M - 1) / pattern.M * pattern.M;
        var gptqOptions = new GptqOptions
        {
            BlockSize = blockSize, DampPercent = options.DampPercent, MaxDampRetries = options.MaxDampRetries, Parallel = options.Parallel,
            LayerName = layer,
        };
        var warnings = new List<string>();

        // Dead columns, then U = upper Cholesky factor of (H + λI)⁻¹ (u holds H, later U): GPTQ's steps 2 and 4.
        float[] stored = weight.ToArray();
        float[] u = new float[(long)cols * cols];
        Gptq.LoadStoredHessian(hessian, cols, null, u);
        Gptq.ZeroDeadColumns(stored, rows, u, cols);
        var (_, damping, _) = Gptq.Factorize(hessian, cols, null, u, null, gptqOptions, warnings, Method);

        float[] wt = new float[(long)cols * rows]; // [cols, rows], current weights
        float[] qt = new float[(long)cols * rows]; // [cols, rows], pruned (and dequantized) result
        Gptq.TransposeColumns(stored, rows, cols, null, wt);
        var mask = new SparseGptMask(rows, cols, pattern, blockSize, options.FixedMask);
        PackedWeight? packed = null;
        try
        {
            ColumnQuantizer? quantizer = format is null ? null
                : options.Nvfp4GlobalScale is float g ? Nvfp4Format.CreateColumnQuantizer(format, rows, cols, g, options.ScaleSearch)
                : format.CreateColumnQuantizer(rows, cols, stored, options.ScaleSearch);
            Gptq.RunBlocks(quantizer, mask, rows, cols, staticGroups: false, perm: null, blockSize, wt, qt, u, new double[rows], new double[cols],
                options.Parallel);
            packed = quantizer?.Build();
        }
        catch (ArgumentException e) when (layer is not null && e is not ArgumentOutOfRangeException)
        {
            throw new ArgumentException($"{Method}, layer '{layer}': {e.Message}", e.ParamName, e);
        }

        var result = new float[(long)rows * cols];
        Gptq.ScatterColumns(qt, rows, cols, null, result);
        var pruned = new bool[(long)rows * cols];
        var prunedT = mask.PrunedTransposed;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                if (!prunedT[(long)c * rows + r]) continue;
                pruned[(long)r * cols + c] = true;
                // The format check above admits only formats whose grid holds 0 exactly; this guards that promise.
                if (result[(long)r * cols + c] != 0)
                    throw new InvalidOperationException($"{Where(layer)}{format} dequantized pruned weight [{r}, {c}] to {result[(long)r * cols + c]}, not 0.");
            }
        return new Outcome(new PruneResult(result, pruned, rows, cols, packed, warnings: warnings), u, damping);
    }

    private static string Where(string? layer) => layer is null ? $"{Method}: " : $"{Method}, layer '{layer}': ";

    private static void CheckOptions(SparseGptOptions options, int rows, int cols)
    {
        if (options.BlockSize < 1)
            throw new ArgumentOutOfRangeException(nameof(options.BlockSize), options.BlockSize, "SparseGptOptions.BlockSize must be at least 1.");
        if (!double.IsFinite(options.DampPercent) || options.DampPercent < 0)
            throw new ArgumentOutOfRangeException(nameof(options.DampPercent), options.DampPercent, "SparseGptOptions.DampPercent must be finite and non-negative.");
        if (options.MaxDampRetries < 0)
            throw new ArgumentOutOfRangeException(nameof(options.MaxDampRetries), options.MaxDampRetries, "SparseGptOptions.MaxDampRetries must be non-negative.");
        string where = Where(options.LayerName);
        if (options.Format is QuantFormat format)
        {
            if (format.Kind == QuantKind.Higgs)
                throw new ArgumentException(
                    $"{where}cannot prune and quantize to {format} in one pass: HIGGS quantizes the Hadamard-rotated weights W·R in " +
                    "vectors, so the zeros of W do not survive. HINT: use an INT, MXFP4 or NVFP4 format without rotation.", nameof(options));
            if (format.RotationBlockSize is not null)
                throw new ArgumentException(
                    $"{where}cannot prune and quantize to {format} in one pass: a rotated format stores W·R, where the zeros of W " +
                    "do not survive. HINT: use the format without its rotation (e.g. int4-asym-g128, mxfp4, nvfp4).", nameof(options));
        }
        if (options.Nvfp4GlobalScale is not null && options.Format?.Kind != QuantKind.Nvfp4)
            throw new ArgumentOutOfRangeException(nameof(options.Nvfp4GlobalScale), options.Nvfp4GlobalScale,
                $"SparseGptOptions.Nvfp4GlobalScale applies to NVFP4 only, not {options.Format?.ToString() ?? "pruning without quantization"}.");
        if (options.FixedMask is bool[] fixedMask && fixedMask.LongLength != (long)rows * cols)
            throw new ArgumentException($"{where}FixedMask has {fixedMask.LongLength} elements but the weight is [{rows}, {cols}].", nameof(options));
    }
}
