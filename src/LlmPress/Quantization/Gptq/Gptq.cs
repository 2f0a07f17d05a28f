using System.Diagnostics;
using System.Numerics.Tensors;
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
/// <item>Static group scales (act-order or <see cref="GptqOptions.StaticGroups"/>) from W'; act-order permutation by
/// decreasing H'ᵢᵢ.</item>
/// <item>Dampening λ = DampPercent·mean(diag H'); U = upper Cholesky factor of (H' + λI)⁻¹ (paper §4 "Cholesky
/// Reformulation"); on failure, retry with 10× λ.</item>
/// <item>Blocks of <see cref="GptqOptions.BlockSize"/> columns (paper §4 "Lazy Batch-Updates"): column by column
/// inside the block — dynamic group scales when a group starts, q = quantize(w), e = (w − q)/Uᵢᵢ,
/// W[:, i+1..block end] −= e·U[i, i+1..block end] — then one GEMM W[:, block end..] −= E·U[block, block end..].</item>
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
public static class Gptq
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
        bool parallel = options.Parallel;
        var warnings = new List<string>();

        // 1. Stored basis: W' [rows, columns], H' [columns, columns].
        float[] stored = format.ToStoredBasis(weight, rows, cols);
        float[] u = new float[(long)columns * columns];
        LoadStoredHessian(hessian, cols, format, u);

        // 2. Dead columns (an input that was always 0): H'ᵢᵢ = 1, W'[:, i] = 0.
        int deadColumns = 0;
        for (int i = 0; i < columns; i++)
        {
            if (u[(long)i * columns + i] != 0) continue;
            deadColumns++;
            for (int r = 0; r < rows; r++) stored[(long)r * columns + i] = 0;
        }
        FixDeadDiagonal(u, columns);

        // 3. Scales and order.
        var quantizer = format.CreateColumnQuantizer(rows, cols, stored, options.ScaleSearch);
        bool staticGroups = options.ActOrder || options.StaticGroups;
        if (staticGroups) quantizer.ComputeAllGroupParameters(stored);
        int[]? perm = options.ActOrder ? ActOrderPermutation(u, columns, step) : null;
        if (perm is not null) PermuteSymmetric(u, columns, perm);
        double meanDiagonal = 0;
        for (int i = 0; i < columns; i++) meanDiagonal += u[(long)i * columns + i];
        meanDiagonal /= columns;
        if (!(meanDiagonal > 0)) GptqThrow.Argument_HessianNotPositive(layer, meanDiagonal);
        long tPrepared = Stopwatch.GetTimestamp();

        // 4. U = chol((H' + λI)⁻¹)ᵀ, upper; retry with 10× λ while the factorisation fails.
        double percent = options.DampPercent;
        int retries = 0;
        while (true)
        {
            double lambda = percent * meanDiagonal;
            for (int i = 0; i < columns; i++)
            {
                long d = (long)i * columns + i;
                u[d] = (float)(u[d] + lambda);
            }
            bool ok = Cholesky.UpperFactorOfInverse(u, columns, out int failed, parallel);
            if (ok && GroupRange.IndexOfNonFinite(u) < 0) break;
            int failedColumn = failed < 0 ? -1 : perm?[failed] ?? failed;
            if (retries >= options.MaxDampRetries) GptqThrow.Argument_NotPositiveDefinite(layer, retries + 1, percent, failedColumn);
            double next = Math.Max(percent * 10, 1e-3);
            warnings.Add($"{(layer is null ? "GPTQ" : $"GPTQ, layer '{layer}'")}: " +
                (ok ? "the inverse Hessian factor overflowed" : $"Cholesky failed at stored column {failedColumn}") +
                $" with dampening {percent:G3} × mean(diag H) (λ = {lambda:G4}); retrying with {next:G3}.");
            percent = next;
            retries++;
            LoadStoredHessian(hessian, cols, format, u);
            FixDeadDiagonal(u, columns);
            if (perm is not null) PermuteSymmetric(u, columns, perm);
        }
        double damping = percent * meanDiagonal;
        long tFactored = Stopwatch.GetTimestamp();

        // 5. The column loop, on Wᵀ: row j of wt is column perm[j] of W', so every column is contiguous.
        float[] wt = new float[(long)columns * rows];   // [columns, rows], current weights, act-order positions
        float[] qt = new float[(long)columns * rows];   // [columns, rows], dequantized
        float[] err = new float[(long)blockSize * rows]; // [blockSize, rows], ε of the current block
        TransposeColumns(stored, rows, columns, perm, wt);
        var rowLosses = new double[rows];
        var columnLosses = new double[columns];
        var groupWork = staticGroups ? null : new DynamicGroupWork(rows, quantizer.GroupSize);
        long columnTicks = 0, trailingTicks = 0;

        for (int i1 = 0; i1 < columns; i1 += blockSize)
        {
            int i2 = Math.Min(i1 + blockSize, columns);
            long t0 = Stopwatch.GetTimestamp();
            for (int j = i1; j < i2; j += step)
            {
                int column = perm is null ? j : perm[j];
                if (groupWork is not null && column % quantizer.GroupSize == 0)
                    groupWork.Compute(quantizer, column, i1, i2, columns, wt, u, err, parallel);
                quantizer.QuantizeColumns(column, wt.AsSpan(j * rows, step * rows), qt.AsSpan(j * rows, step * rows));
                for (int s = 0; s < step; s++)
                    QuantizedColumnUpdate(j + s, i1, i2, rows, columns, wt, qt, u, err, rowLosses, columnLosses, column + s);
            }
            long t1 = Stopwatch.GetTimestamp();
            // W[:, i2..] −= E·U[i1..i2, i2..], as Wᵀ[i2.., :] −= U[i1..i2, i2..]ᵀ·E.
            if (i2 < columns)
                Gemm.Sgemm(transposeA: true, transposeB: false, columns - i2, rows, i2 - i1, -1f, u.AsSpan(i1 * columns + i2), columns,
                    err, rows, 1f, wt.AsSpan(i2 * rows), rows, parallel);
            long t2 = Stopwatch.GetTimestamp();
            columnTicks += t1 - t0;
            trailingTicks += t2 - t1;
        }
        long tLoop = Stopwatch.GetTimestamp();

        // 6. Outputs.
        var packed = quantizer.Build();
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
            TimeSpan.FromTicks(columnTicks * TimeSpan.TicksPerSecond / Stopwatch.Frequency),
            TimeSpan.FromTicks(trailingTicks * TimeSpan.TicksPerSecond / Stopwatch.Frequency), Stopwatch.GetElapsedTime(tLoop, tEnd));
        return new GptqResult(packed, dequantized, dequantizedStored, rowLosses, columnLosses, percent, damping, retries, deadColumns,
            perm, warnings, timings);
    }

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

    // ε = (w − q)/Uⱼⱼ for position j (act-order position; stored column `column`), its loss ½ε², and the in-block update
    // W[:, j+1..i2) −= ε·U[j, j+1..i2). For the first column of a HIGGS pair this also updates the second one, whose q
    // was already fixed: that is the forward substitution ε_S = (w_S − q_S)·U_SS⁻¹ of the pair update (see remarks).
    private static void QuantizedColumnUpdate(int j, int i1, int i2, int rows, int columns, float[] wt, float[] qt, float[] u,
        float[] err, double[] rowLosses, double[] columnLosses, int column)
    {
        var w = wt.AsSpan(j * rows, rows);
        var e = err.AsSpan((j - i1) * rows, rows);
        TensorPrimitives.Subtract(w, qt.AsSpan(j * rows, rows), e);
        TensorPrimitives.Divide(e, u[(long)j * columns + j], e);
        double columnLoss = 0;
        for (int r = 0; r < rows; r++)
        {
            double l = 0.5 * e[r] * (double)e[r];
            rowLosses[r] += l;
            columnLoss += l;
        }
        columnLosses[column] += columnLoss;
        var uRow = u.AsSpan(j * columns, columns);
        for (int k = j + 1; k < i2; k++)
        {
            var target = wt.AsSpan(k * rows, rows);
            TensorPrimitives.FusedMultiplyAdd(e, -uRow[k], target, target);
        }
    }

    /// <summary>Scratch for dynamic group scales, which need the group's current weights as [rows, width].</summary>
    private sealed class DynamicGroupWork(int rows, int groupSize)
    {
        private readonly float[] _group = new float[(long)rows * groupSize];                   // [rows, width]
        private readonly float[] _pending = new float[(long)Math.Max(0, groupSize - 1) * rows]; // [beyond, rows]

        // Group of stored column j (no act-order: position = column). Columns [j, i2) are current in wt; columns past
        // the block still lack the block's updates so far, E[0..j−i1)·U[i1..j, i2..], which are subtracted here.
        public void Compute(ColumnQuantizer quantizer, int j, int i1, int i2, int columns, float[] wt, float[] u, float[] err, bool parallel)
        {
            int end = Math.Min(j + quantizer.GroupSize, columns), width = end - j;
            int inBlock = Math.Min(end, i2) - j;
            for (int c = 0; c < inBlock; c++)
            {
                var source = wt.AsSpan((j + c) * rows, rows);
                for (int r = 0; r < rows; r++) _group[r * width + c] = source[r];
            }
            int beyond = end - j - inBlock;
            if (beyond > 0)
            {
                var pending = _pending.AsSpan(0, beyond * rows);
                if (j > i1)
                    Gemm.Sgemm(transposeA: true, transposeB: false, beyond, rows, j - i1, 1f, u.AsSpan(i1 * columns + i2), columns,
                        err, rows, 0f, pending, rows, parallel);
                else
                    pending.Clear();
                for (int c = 0; c < beyond; c++)
                {
                    var source = wt.AsSpan((i2 + c) * rows, rows);
                    var correction = pending.Slice(c * rows, rows);
                    for (int r = 0; r < rows; r++) _group[r * width + inBlock + c] = source[r] - correction[r];
                }
            }
            quantizer.ComputeGroupParameters(j / quantizer.GroupSize, _group.AsSpan(0, rows * width), width);
        }
    }

    // H (original basis, lower triangle) → destination [columns, columns]: symmetric, zero-padded, rotated when the format rotates.
    private static void LoadStoredHessian(ReadOnlySpan<float> hessian, int cols, QuantFormat format, Span<float> destination)
    {
        int columns = format.StoredColumns(cols);
        destination.Clear();
        for (int i = 0; i < cols; i++) hessian.Slice(i * cols, i + 1).CopyTo(destination.Slice(i * columns, i + 1));
        MirrorLowerToUpper(destination, columns);
        if (format.RotationBlockSize is int b)
        {
            HadamardTransform.TransformBlockDiagonal(destination, columns, b, normalize: true); // H·R (each row times R)
            TransposeSquare(destination, columns);                                             // (H·R)ᵀ = R·H
            HadamardTransform.TransformBlockDiagonal(destination, columns, b, normalize: true); // R·H·R
            MirrorLowerToUpper(destination, columns);                                          // exact symmetry
        }
    }

    private static void FixDeadDiagonal(Span<float> h, int n)
    {
        for (int i = 0; i < n; i++)
            if (h[i * n + i] == 0) h[i * n + i] = 1;
    }

    // Act-order (gptq.py: perm = argsort(diag(H), descending=True)): steps of p columns (HIGGS pairs stay together),
    // by decreasing Σ of their diagonal entries, ties by position (stable).
    private static int[] ActOrderPermutation(ReadOnlySpan<float> h, int n, int step)
    {
        int steps = n / step;
        var key = new double[steps];
        for (int k = 0; k < steps; k++)
            for (int s = 0; s < step; s++) key[k] += h[(k * step + s) * n + k * step + s];
        var order = new int[steps];
        for (int k = 0; k < steps; k++) order[k] = k;
        Array.Sort(order, (a, b) => key[a] != key[b] ? key[b].CompareTo(key[a]) : a.CompareTo(b));
        var perm = new int[n];
        for (int k = 0; k < steps; k++)
            for (int s = 0; s < step; s++) perm[k * step + s] = order[k] * step + s;
        return perm;
    }

    // h ← h[perm, perm] in place: rows by following cycles, then each row's entries through a scratch row.
    private static void PermuteSymmetric(Span<float> h, int n, int[] perm)
    {
        var saved = new float[n];
        var done = new bool[n];
        for (int start = 0; start < n; start++)
        {
            if (done[start] || perm[start] == start) continue;
            h.Slice(start * n, n).CopyTo(saved);
            int a = start;
            while (true)
            {
                done[a] = true;
                int source = perm[a];
                if (source == start)
                {
                    saved.CopyTo(h.Slice(a * n, n));
                    break;
                }
                h.Slice(source * n, n).CopyTo(h.Slice(a * n, n));
                a = source;
            }
        }
        for (int i = 0; i < n; i++)
        {
            var row = h.Slice(i * n, n);
            for (int j = 0; j < n; j++) saved[j] = row[perm[j]];
            saved.CopyTo(row);
        }
    }

    private const int Tile = 32;

    private static void MirrorLowerToUpper(Span<float> a, int n)
    {
        for (int ib = 0; ib < n; ib += Tile)
            for (int jb = 0; jb <= ib; jb += Tile)
            {
                int ie = Math.Min(n, ib + Tile), je = Math.Min(n, jb + Tile);
                for (int i = ib; i < ie; i++)
                    for (int j = jb; j < Math.Min(je, i); j++) a[j * n + i] = a[i * n + j];
            }
    }

    private static void TransposeSquare(Span<float> a, int n)
    {
        for (int ib = 0; ib < n; ib += Tile)
            for (int jb = 0; jb <= ib; jb += Tile)
            {
                int ie = Math.Min(n, ib + Tile), je = Math.Min(n, jb + Tile);
                for (int i = ib; i < ie; i++)
                    for (int j = jb; j < Math.Min(je, i); j++) (a[j * n + i], a[i * n + j]) = (a[i * n + j], a[j * n + i]);
            }
    }

    // wt[j, r] = w[r, perm[j]]: w [rows, columns] → wt [columns, rows], in tiles.
    private static void TransposeColumns(float[] w, int rows, int columns, int[]? perm, float[] wt)
    {
        for (int rb = 0; rb < rows; rb += Tile)
            for (int jb = 0; jb < columns; jb += Tile)
            {
                int re = Math.Min(rows, rb + Tile), je = Math.Min(columns, jb + Tile);
                for (int j = jb; j < je; j++)
                {
                    int c = perm is null ? j : perm[j];
                    for (int r = rb; r < re; r++) wt[(long)j * rows + r] = w[(long)r * columns + c];
                }
            }
    }

    // w[r, perm[j]] = wt[j, r]: the inverse of TransposeColumns.
    private static void ScatterColumns(float[] wt, int rows, int columns, int[]? perm, float[] w)
    {
        for (int rb = 0; rb < rows; rb += Tile)
            for (int jb = 0; jb < columns; jb += Tile)
            {
                int re = Math.Min(rows, rb + Tile), je = Math.Min(columns, jb + Tile);
                for (int j = jb; j < je; j++)
                {
                    int c = perm is null ? j : perm[j];
                    for (int r = rb; r < re; r++) w[(long)r * columns + c] = wt[(long)j * rows + r];
                }
            }
    }

    private static void CheckOptions(GptqOptions options)
    {
        if (options.BlockSize < 1) GptqThrow.ArgumentOutOfRange_Option(nameof(options.BlockSize), options.BlockSize, "must be at least 1");
        if (!double.IsFinite(options.DampPercent) || options.DampPercent < 0)
            GptqThrow.ArgumentOutOfRange_Option(nameof(options.DampPercent), options.DampPercent, "must be finite and non-negative");
        if (options.MaxDampRetries < 0) GptqThrow.ArgumentOutOfRange_Option(nameof(options.MaxDampRetries), options.MaxDampRetries, "must be non-negative");
    }
}
