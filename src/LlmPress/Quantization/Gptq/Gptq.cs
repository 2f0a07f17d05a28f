using System.Diagnostics;
using LlmPress.Numerics;

namespace LlmPress.Quantization;

/// <summary>
/// GPTQ for one linear layer (Frantar, Ashkboos, Hoefler, Alistarh, "GPTQ: Accurate Post-Training Quantization for
/// Generative Pre-trained Transformers", arXiv 2210.17323), following IST-DASLab gptq.py's <c>fasterquant</c>:
/// quantize the columns of W one at a time and, after each, move the error onto the not-yet-quantized columns with the
/// Optimal Brain Surgeon update, so that the layer-output error ‖(W − Ŵ)X‖² on the calibration inputs X stays small.
/// </summary>
/// <remarks>
/// <para>Steps (the numbers are those of the step comments in the code):</para>
/// <list type="number">
/// <item>Stored basis: W' = <see cref="QuantFormat.ToStoredBasis"/>(W) and H' = R·H·R for a rotating format (HIGGS,
/// MR-GPTQ; R the block Hadamard rotation, W' = W·R, so H' is the Hessian of the rotated inputs x·R). The caller passes H
/// in the original basis.</item>
/// <item>Dead columns: H'ᵢᵢ = 0 → H'ᵢᵢ = 1 and W'[:, i] = 0.</item>
/// <item>Act-order: permutation by decreasing H'ᵢᵢ.</item>
/// <item>Dampening λ = DampPercent·mean(diag H'); U = upper Cholesky factor of (H' + λI)⁻¹ (paper §4 "Cholesky
/// Reformulation"); on failure, retry with 10× λ.</item>
/// <item>Static group scales (act-order or <see cref="GptqOptions.StaticGroups"/>) from W' with dead columns zeroed.
/// Blocks of <see cref="GptqOptions.BlockSize"/> columns (paper §4 "Lazy Batch-Updates"): column by column
/// inside the block — dynamic group scales when a group starts, q = quantize(w), e = (w − q)/Uᵢᵢ,
/// W[:, i+1..block end] −= e·U[i, i+1..block end] — then one GEMM W[:, block end..] −= E·U[block, block end..].</item>
/// <item>Pack, and the dequantized matrix in both bases.</item>
/// </list>
/// <para>
/// HIGGS p = 2 quantizes column pairs S = {i, i+1} jointly. The OBS update for a set S of the remaining columns F with
/// G = H_F⁻¹ = U_FFᵀU_FF (U_FF the trailing block of U) is w_F −= (w_S − q_S)·G_SS⁻¹·G_S,F; since G_S,F = U_SSᵀ·U_S,F,
/// this is w_F −= ε·U_S,F with ε = (w_S − q_S)·U_SS⁻¹, and the loss is ½‖ε‖². With U_SS upper triangular, ε is
/// computed by forward substitution — exactly the single-column rule applied to i and then to i + 1, provided q_S is
/// chosen from both columns' values at the pair's start (column i + 1 then receives i's update before its error is taken).
/// </para>
/// <para>
/// Deviation from gptq.py (deliberate): a dynamic group's scales come from the group's fully updated current weights.
/// gptq.py reads its W, where columns of the current block have not yet received the in-block updates (they live in
/// its W1 copy), so with groups smaller than the block its scales depend on the block size. Here the in-block columns
/// are current and columns past the block get the block's pending updates first, so the result does not depend on
/// <see cref="GptqOptions.BlockSize"/> beyond rounding, and equals the unbatched algorithm. Both agree when groups start
/// at block starts (e.g. group 128 = block 128). Per-channel scales are taken after dead columns are zeroed.
/// </para>
/// <para>
/// Results are bit-identical for any <see cref="Parallelism.MaxThreads"/> (the GEMMs, the factorisation and the
/// quantizers split work by output only); they may differ in the last bits between instruction-set tiers.
/// </para>
/// </remarks>
public static partial class Gptq
{
    /// <summary>
    /// Quantizes W with GPTQ. Effectively computes Ŵ ≈ argmin over the format's grid of tr((W − Ŵ)·H·(W − Ŵ)ᵀ), greedily
    /// column by column with OBS error feedback.
    /// </summary>
    /// <param name="weight">[rows, cols] row-major FP32, the original (unrotated) basis, Hugging Face [out, in] layout.</param>
    /// <param name="rows">Output features.</param>
    /// <param name="cols">Input features.</param>
    /// <param name="hessian">
    /// [cols, cols], H = 2/N·Σxxᵀ of the layer's inputs in the ORIGINAL basis (e.g. <see cref="HessianAccumulator.GetHessian()"/>);
    /// only its lower triangle is read. For rotating formats it is rotated here (H' = R·H·R, see <see cref="ToStoredBasisHessian"/>),
    /// so one Hessian serves every layer that reads the same input, whatever their formats.
    /// </param>
    /// <param name="format">The target format (group size, symmetry, rotation).</param>
    /// <param name="options">Null for <see cref="GptqOptions.Default"/>.</param>
    /// <exception cref="ArgumentException">Wrong lengths; NaN/∞ in weight or hessian (the message names the element);
    /// a Hessian that stays indefinite after <see cref="GptqOptions.MaxDampRetries"/> dampening retries; an invalid
    /// option. Messages name <see cref="GptqOptions.LayerName"/>.</exception>
    public static GptqResult Quantize(ReadOnlySpan<float> weight, int rows, int cols, ReadOnlySpan<float> hessian, QuantFormat format,
        GptqOptions? options = null)
    {
        long tStart = Stopwatch.GetTimestamp();
        ArgumentNullException.ThrowIfNull(format);
        options ??= GptqOptions.Default;
        CheckOptions(options);
        if (options.Nvfp4GlobalScale is not null && format.Kind != QuantKind.Nvfp4)
            GptqThrow.ArgumentOutOfRange_Option(nameof(options.Nvfp4GlobalScale), options.Nvfp4GlobalScale, $"applies to NVFP4 only, not {format}");
        string? layer = options.LayerName;
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        if (weight.Length != (long)rows * cols) GptqThrow.Argument_Length(layer, nameof(weight), $"[{rows}, {cols}]", (long)rows * cols, weight.Length);
        if (hessian.Length != (long)cols * cols) GptqThrow.Argument_Length(layer, nameof(hessian), $"[{cols}, {cols}]", (long)cols * cols, hessian.Length);
        int bad = GroupRange.IndexOfNonFinite(weight);
        if (bad >= 0) GptqThrow.Argument_WeightNonFinite(layer, bad / cols, bad % cols, weight[bad]);
        bad = GroupRange.IndexOfNonFinite(hessian);
        if (bad >= 0) GptqThrow.Argument_HessianNonFinite(layer, bad / cols, bad % cols, hessian[bad]);

        int columns = format.StoredColumns(cols);
        int step = format.ColumnsPerStep;
        int blockSize = (Math.Min(options.BlockSize, columns) + step - 1) / step * step;
        var warnings = new List<string>();

        // 1. Stored basis: W' [rows, columns], H' [columns, columns] (u holds H', later U).
        float[] stored = format.ToStoredBasis(weight, rows, cols);
        float[] u = new float[(long)columns * columns];
        LoadStoredHessian(hessian, cols, format, u);

        // 2. Dead columns (an input that was always 0): H'ᵢᵢ = 1, W'[:, i] = 0.
        int deadColumns = ZeroDeadColumns(stored, rows, u, columns);

        // 3. Act-order permutation (by decreasing H'ᵢᵢ).
        int[]? perm = options.ActOrder ? ActOrderPermutation(u, columns, step) : null;
        if (perm is not null) PermuteSymmetric(u, columns, perm);
        long tPrepared = Stopwatch.GetTimestamp();

        // 4. U = upper Cholesky factor of (H' + λI)⁻¹, λ = DampPercent·mean(diag H'), retried with 10× λ.
        var (dampPercent, damping, retries) = Factorize(hessian, cols, format, u, perm, options, warnings);
        long tFactored = Stopwatch.GetTimestamp();

        // 5. Group scales and the column loop, on Wᵀ: row j of wt is column perm[j] of W', so columns are contiguous.
        float[] wt = new float[(long)columns * rows]; // [columns, rows], current weights, act-order positions
        float[] qt = new float[(long)columns * rows]; // [columns, rows], dequantized
        TransposeColumns(stored, rows, columns, perm, wt);
        var rowLosses = new double[rows];
        var columnLosses = new double[columns];
        PackedWeight packed;
        long columnTicks, trailingTicks, tLoop, tPacked;
        try
        {
            var quantizer = options.Nvfp4GlobalScale is float g
                ? Nvfp4Format.CreateColumnQuantizer(format, rows, cols, g, options.ScaleSearch)
                : format.CreateColumnQuantizer(rows, cols, stored, options.ScaleSearch);
            bool staticGroups = options.ActOrder || options.StaticGroups;
            if (staticGroups) quantizer.ComputeAllGroupParameters(stored);
            (columnTicks, trailingTicks) = RunBlocks(quantizer, null, rows, columns, staticGroups, perm, blockSize, wt, qt, u, rowLosses, columnLosses,
                options.Parallel);
            tLoop = Stopwatch.GetTimestamp();
            packed = quantizer.Build();
            tPacked = Stopwatch.GetTimestamp();
        }
        catch (ArgumentException e) when (layer is not null && e is not ArgumentOutOfRangeException)
        {
            // A format error (a NaN from an exploding update, an FP16 scale overflow): say which layer.
            throw GptqThrow.InLayer(layer, e);
        }

        // 6. Outputs.
        var dequantizedStored = new float[(long)rows * columns];
        ScatterColumns(qt, rows, columns, perm, dequantizedStored);
        float[] dequantized = dequantizedStored;
        if (format.RotationBlockSize is int b)
        {
            dequantized = new float[(long)rows * cols];
            BlockRotation.RotateBack((float[])dequantizedStored.Clone(), rows, columns, b, cols, dequantized);
        }
        long tEnd = Stopwatch.GetTimestamp();

        var timings = new GptqTimings(Stopwatch.GetElapsedTime(tStart, tPrepared), Stopwatch.GetElapsedTime(tPrepared, tFactored),
            ToTimeSpan(columnTicks), ToTimeSpan(trailingTicks), Stopwatch.GetElapsedTime(tLoop, tPacked), Stopwatch.GetElapsedTime(tPacked, tEnd));
        return new GptqResult(packed, dequantized, dequantizedStored, rowLosses, columnLosses, dampPercent, damping, retries, deadColumns,
            perm, warnings, timings);
    }

    private static TimeSpan ToTimeSpan(long stopwatchTicks) => TimeSpan.FromTicks(stopwatchTicks * TimeSpan.TicksPerSecond / Stopwatch.Frequency);

    /// <summary>
    /// The Hessian of the stored-basis inputs, [StoredColumns, StoredColumns]: H zero-padded and, for a rotating format,
    /// R·H·R with R = diag(H_b/√b, …) (the inputs are rotated as x' = x·R, so Σx'ᵀx' = R·(Σxᵀx)·R; R is symmetric and
    /// orthogonal). Rotating H costs O(n² log b) instead of rotating every calibration token. Only the lower triangle of
    /// <paramref name="hessian"/> is read; the result is exactly symmetric.
    /// </summary>
    /// <exception cref="ArgumentException">hessian is not [cols, cols].</exception>
    public static float[] ToStoredBasisHessian(ReadOnlySpan<float> hessian, int cols, QuantFormat format)
    {
        ArgumentNullException.ThrowIfNull(format);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        if (hessian.Length != (long)cols * cols) GptqThrow.Argument_Length(null, nameof(hessian), $"[{cols}, {cols}]", (long)cols * cols, hessian.Length);
        int columns = format.StoredColumns(cols);
        var result = new float[(long)columns * columns];
        LoadStoredHessian(hessian, cols, format, result);
        return result;
    }

    private static void CheckOptions(GptqOptions options)
    {
        if (options.BlockSize < 1) GptqThrow.ArgumentOutOfRange_Option(nameof(options.BlockSize), options.BlockSize, "must be at least 1");
        if (!double.IsFinite(options.DampPercent) || options.DampPercent < 0)
            GptqThrow.ArgumentOutOfRange_Option(nameof(options.DampPercent), options.DampPercent, "must be finite and non-negative");
        if (options.MaxDampRetries < 0) GptqThrow.ArgumentOutOfRange_Option(nameof(options.MaxDampRetries), options.MaxDampRetries, "must be non-negative");
    }
}
