namespace LlmPress.Quantization;

/// <summary>What <see cref="Gptq.Quantize"/> produced for one linear layer.</summary>
/// <remarks>
/// Losses follow gptq.py: quantizing column i of a row with error e (after the earlier columns' updates) adds
/// e² / [U]ᵢᵢ² / 2, U the upper Cholesky factor of H⁻¹ (for a HIGGS pair, the pair's joint OBS error, split over its two
/// columns). With H = 2/N·XXᵀ they sum, per row, to exactly ½·Δ(H + λI)Δᵀ for that row's stored-basis error Δ: the
/// damped layer-output error ‖ΔX‖²/N that GPTQ minimises greedily.
/// </remarks>
public sealed class GptqResult
{
    internal GptqResult(PackedWeight packed, float[] dequantized, float[] dequantizedStored, double[] rowLosses,
        double[] columnLosses, double dampPercent, double damping, int dampRetries, int deadColumns, int[]? permutation,
        IReadOnlyList<string> warnings, GptqTimings timings)
    {
        Packed = packed;
        Dequantized = dequantized;
        DequantizedStored = dequantizedStored;
        RowLosses = rowLosses;
        ColumnLosses = columnLosses;
        double total = 0;
        foreach (double l in rowLosses) total += l;
        TotalLoss = total;
        DampPercent = dampPercent;
        Damping = damping;
        DampRetries = dampRetries;
        DeadColumns = deadColumns;
        Permutation = permutation;
        Warnings = warnings;
        Timings = timings;
    }

    /// <summary>The quantized weight, ready to export.</summary>
    public PackedWeight Packed { get; }

    /// <summary>
    /// The dequantized weight in the original basis, [Rows, Cols] (= <see cref="PackedWeight.Dequantize()"/>); the same
    /// array as <see cref="DequantizedStored"/> when the format does not rotate.
    /// </summary>
    public float[] Dequantized { get; }

    /// <summary>
    /// The dequantized weight in the stored (rotated, padded) basis, [Rows, StoredColumns], bit-identical to
    /// <see cref="PackedWeight.DequantizeStored()"/>.
    /// </summary>
    public float[] DequantizedStored { get; }

    /// <summary>Per output row: Σ over columns of the OBS losses, [Rows].</summary>
    public double[] RowLosses { get; }

    /// <summary>Per stored column (in stored order, not act-order): Σ over rows of the OBS losses, [StoredColumns].</summary>
    public double[] ColumnLosses { get; }

    /// <summary>Σ of all losses (gptq.py prints this as "error").</summary>
    public double TotalLoss { get; }

    /// <summary>The dampening actually used, as a fraction of mean(diag H): <see cref="GptqOptions.DampPercent"/> unless retried.</summary>
    public double DampPercent { get; }

    /// <summary>The absolute λ added to the diagonal of the (stored-basis) Hessian.</summary>
    public double Damping { get; }

    /// <summary>Factorisation retries with more dampening (0 normally).</summary>
    public int DampRetries { get; }

    /// <summary>Stored columns with H_ii = 0 (inputs that were always zero): their weights were set to 0.</summary>
    public int DeadColumns { get; }

    /// <summary>Act-order: stored column quantized at each position ([StoredColumns]); null without act-order.</summary>
    public int[]? Permutation { get; }

    /// <summary>Non-fatal problems (dampening retries), one line each. The library never prints them.</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>Where the time went.</summary>
    public GptqTimings Timings { get; }

    /// <summary>Wall-clock time of the whole call.</summary>
    public TimeSpan Elapsed => Timings.Total;
}

/// <summary>Wall-clock time of the phases of one <see cref="Gptq.Quantize"/> call.</summary>
/// <param name="Prepare">Validation, rotation of W and H, dead columns, act-order permutation, static group scales.</param>
/// <param name="Factorize">U = upper Cholesky factor of (H + λI)⁻¹, retries included.</param>
/// <param name="Columns">The column loop inside blocks: group scales, quantization, errors, in-block updates.</param>
/// <param name="Trailing">The one-GEMM-per-block updates of the columns after each block.</param>
/// <param name="Pack">Building the <see cref="PackedWeight"/> (the format's packing).</param>
/// <param name="Outputs">The dequantized matrices (un-permuting, transposing, rotating back).</param>
public readonly record struct GptqTimings(TimeSpan Prepare, TimeSpan Factorize, TimeSpan Columns, TimeSpan Trailing, TimeSpan Pack, TimeSpan Outputs)
{
    public TimeSpan Total => Prepare + Factorize + Columns + Trailing + Pack + Outputs;
}
