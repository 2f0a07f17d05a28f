using LlmPress.Numerics;

namespace LlmPress.Quantization;

// The Hessian side of GPTQ: stored basis, dead columns, act-order, dampening and the factorisation.
public static partial class Gptq
{
    // H (original basis, lower triangle) → destination [columns, columns]: symmetric, zero-padded, rotated when the
    // format rotates. A null format (pruning only) is the original basis: columns = cols, no rotation.
    internal static void LoadStoredHessian(ReadOnlySpan<float> hessian, int cols, QuantFormat? format, Span<float> destination)
    {
        int columns = format?.StoredColumns(cols) ?? cols;
        destination.Clear();
        for (int i = 0; i < cols; i++) hessian.Slice(i * cols, i + 1).CopyTo(destination.Slice(i * columns, i + 1));
        MirrorLowerToUpper(destination, columns);
        if (format?.RotationBlockSize is int b)
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

    // Step 2 (an input that was always 0): W'[:, i] = 0 and H'ᵢᵢ = 1 wherever H'ᵢᵢ = 0. Returns how many.
    internal static int ZeroDeadColumns(float[] stored, int rows, float[] h, int columns)
    {
        int deadColumns = 0;
        for (int i = 0; i < columns; i++)
        {
            if (h[(long)i * columns + i] != 0) continue;
            deadColumns++;
            for (int r = 0; r < rows; r++) stored[(long)r * columns + i] = 0;
        }
        FixDeadDiagonal(h, columns);
        return deadColumns;
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

    // Adds λ = percent·mean(diag H') to the prepared (dead-fixed, permuted) H' in u and replaces it by U; on failure
    // rebuilds H' from the caller's Hessian (U overwrote it) and retries with 10× the percentage.
    // `method` names the caller in messages ("GPTQ", "SparseGPT").
    internal static (double Percent, double Damping, int Retries) Factorize(ReadOnlySpan<float> hessian, int cols, QuantFormat? format,
        float[] u, int[]? perm, GptqOptions options, List<string> warnings, string method = "GPTQ")
    {
        string? layer = options.LayerName;
        int columns = format?.StoredColumns(cols) ?? cols;
        double meanDiagonal = 0;
        for (int i = 0; i < columns; i++) meanDiagonal += u[(long)i * columns + i];
        meanDiagonal /= columns;
        if (!(meanDiagonal > 0)) GptqThrow.Argument_HessianNotPositive(layer, meanDiagonal, method);
        double percent = options.DampPercent;
        for (int retries = 0; ; retries++)
        {
            double lambda = percent * meanDiagonal;
            for (int i = 0; i < columns; i++)
            {
                long d = (long)i * columns + i;
                u[d] = (float)(u[d] + lambda);
            }
            bool ok = Cholesky.UpperFactorOfInverse(u, columns, out int failed, options.Parallel);
            if (ok && GroupRange.IndexOfNonFinite(u) < 0) return (percent, lambda, retries);
            int failedColumn = failed < 0 ? -1 : perm?[failed] ?? failed;
            if (retries >= options.MaxDampRetries) GptqThrow.Argument_NotPositiveDefinite(layer, retries + 1, percent, failedColumn, method);
            double next = Math.Max(percent * 10, 1e-3);
            warnings.Add($"{GptqThrow.Prefix(layer, method)}: " +
                (ok ? "the inverse Hessian factor overflowed" : $"Cholesky failed at stored column {failedColumn}") +
                $" with dampening {percent:G3} × mean(diag H) (λ = {lambda:G4}); retrying with {next:G3}.");
            percent = next;
            LoadStoredHessian(hessian, cols, format, u);
            FixDeadDiagonal(u, columns);
            if (perm is not null) PermuteSymmetric(u, columns, perm);
        }
    }

    private const int Tile = 32; // square tiles for transposes and mirrors, so both sides stay in L1

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
}
