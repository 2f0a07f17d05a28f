using LlmPress.Quantization;

namespace LlmPress.Tests.Quantization.Gptq;

/// <summary>
/// Textbook GPTQ in double precision, no lazy batches, no Cholesky trick: the inverse Hessian G of the not-yet-quantized
/// columns is kept explicitly and, after each step S (one column, or a HIGGS pair), every remaining column gets the OBS
/// update w_F −= (w_S − q_S)·G_SS⁻¹·G_S,F and S is eliminated: G ← G − G_·S·G_SS⁻¹·G_S· (OBQ, Frantar &amp; Alistarh 2022).
/// Quantization itself uses the library's <see cref="ColumnQuantizer"/> (on the float-rounded current weights), so
/// this checks the solver, not the formats.
/// </summary>
internal static class GptqReference
{
    public sealed record Result(PackedWeight Packed, double[] DequantizedStored, double[] RowLosses, double[] ColumnLosses, int[] Permutation, int DeadColumns);

    public static Result Quantize(float[] weight, int rows, int cols, float[] hessian, QuantFormat format, GptqOptions options)
    {
        int n = format.StoredColumns(cols), p = format.ColumnsPerStep;
        float[] stored = format.ToStoredBasis(weight, rows, cols);
        double[,] h = StoredHessian(hessian, cols, format);
        int dead = 0;
        for (int i = 0; i < n; i++)
        {
            if (h[i, i] != 0) continue;
            dead++;
            h[i, i] = 1;
            for (int r = 0; r < rows; r++) stored[r * n + i] = 0;
        }
        var quantizer = format.CreateColumnQuantizer(rows, cols, stored, options.ScaleSearch);
        bool staticGroups = options.ActOrder || options.StaticGroups;
        if (staticGroups) quantizer.ComputeAllGroupParameters(stored);

        int steps = n / p;
        var order = Enumerable.Range(0, steps).ToArray();
        if (options.ActOrder)
        {
            var key = new double[steps];
            for (int k = 0; k < steps; k++)
                for (int s = 0; s < p; s++) key[k] += h[k * p + s, k * p + s];
            order = order.OrderByDescending(k => key[k]).ThenBy(k => k).ToArray();
        }
        var perm = order.SelectMany(k => Enumerable.Range(k * p, p)).ToArray();

        double mean = 0;
        for (int i = 0; i < n; i++) mean += h[i, i];
        mean /= n;
        for (int i = 0; i < n; i++) h[i, i] += options.DampPercent * mean;
        double[,] g = Inverse(h, n);

        var w = new double[rows, n];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < n; c++) w[r, c] = stored[r * n + c];
        var current = new float[rows * n];
        var removed = new bool[n];
        var deq = new double[rows * n];
        var rowLosses = new double[rows];
        var columnLosses = new double[n];
        var values = new float[p * rows];
        var dq = new float[p * rows];

        for (int k = 0; k < steps; k++)
        {
            int first = perm[k * p];
            if (!staticGroups && first % quantizer.GroupSize == 0)
            {
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < n; c++) current[r * n + c] = (float)w[r, c];
                quantizer.ComputeGroupParameters(first / quantizer.GroupSize, current.AsSpan(first), n);
            }
            for (int s = 0; s < p; s++)
                for (int r = 0; r < rows; r++) values[s * rows + r] = (float)w[r, first + s];
            quantizer.QuantizeColumns(first, values, dq);

            // G_SS and its inverse (1×1 or 2×2).
            double a = g[first, first], b = p == 2 ? g[first, first + 1] : 0, d = p == 2 ? g[first + 1, first + 1] : 1;
            double det = a * d - b * b;
            double i00 = p == 2 ? d / det : 1 / a, i01 = p == 2 ? -b / det : 0, i11 = p == 2 ? a / det : 0;
            for (int r = 0; r < rows; r++)
            {
                double e0 = w[r, first] - dq[r];
                double e1 = p == 2 ? w[r, first + 1] - dq[rows + r] : 0;
                double c0 = e0 * i00 + e1 * i01, c1 = e0 * i01 + e1 * i11; // c = e·G_SS⁻¹
                // The pair's loss ½·e·G_SS⁻¹·eᵀ, split as the sequential (Cholesky) form does: first column alone, then the rest.
                double l0 = 0.5 * e0 * e0 / a;
                double l1 = p == 2 ? 0.5 * Sq(e1 - e0 * b / a) / (d - b * b / a) : 0;
                rowLosses[r] += l0 + l1;
                columnLosses[first] += l0;
                if (p == 2) columnLosses[first + 1] += l1;
                for (int f = 0; f < n; f++)
                {
                    if (removed[f]) continue;
                    w[r, f] -= c0 * g[first, f] + (p == 2 ? c1 * g[first + 1, f] : 0);
                }
                for (int s = 0; s < p; s++)
                {
                    w[r, first + s] = dq[s * rows + r];
                    deq[r * n + first + s] = dq[s * rows + r];
                }
            }
            // Eliminate S from G: G ← G − G_·S·G_SS⁻¹·G_S·.
            var gs0 = new double[n];
            var gs1 = new double[n];
            for (int f = 0; f < n; f++) { gs0[f] = g[first, f]; gs1[f] = p == 2 ? g[first + 1, f] : 0; }
            for (int x = 0; x < n; x++)
            {
                if (removed[x]) continue;
                double t0 = gs0[x] * i00 + gs1[x] * i01, t1 = gs0[x] * i01 + gs1[x] * i11;
                for (int y = 0; y < n; y++) g[x, y] -= t0 * gs0[y] + t1 * gs1[y];
            }
            for (int s = 0; s < p; s++) removed[first + s] = true;
        }
        return new Result(quantizer.Build(), deq, rowLosses, columnLosses, perm, dead);
    }

    private static double Sq(double x) => x * x;

    /// <summary>The stored-basis Hessian in double: symmetric from the lower triangle, zero-padded, R·H·R with an explicit Hadamard matrix.</summary>
    public static double[,] StoredHessian(float[] hessian, int cols, QuantFormat format)
    {
        int n = format.StoredColumns(cols);
        var h = new double[n, n];
        for (int i = 0; i < cols; i++)
            for (int j = 0; j <= i; j++) h[i, j] = h[j, i] = hessian[i * cols + j];
        if (format.RotationBlockSize is not int b) return h;
        var rot = new double[n, n]; // block-diagonal H_b/√b, Sylvester order: (−1)^popcount(i & j)
        for (int blk = 0; blk < n; blk += b)
            for (int i = 0; i < b; i++)
                for (int j = 0; j < b; j++)
                    rot[blk + i, blk + j] = (System.Numerics.BitOperations.PopCount((uint)(i & j)) % 2 == 0 ? 1 : -1) / Math.Sqrt(b);
        return Multiply(Multiply(rot, h, n), rot, n);
    }

    public static double[,] Multiply(double[,] x, double[,] y, int n)
    {
        var z = new double[n, n];
        for (int i = 0; i < n; i++)
            for (int k = 0; k < n; k++)
            {
                double v = x[i, k];
                if (v == 0) continue;
                for (int j = 0; j < n; j++) z[i, j] += v * y[k, j];
            }
        return z;
    }

    /// <summary>Gauss–Jordan with partial pivoting.</summary>
    public static double[,] Inverse(double[,] m, int n)
    {
        var a = (double[,])m.Clone();
        var inv = new double[n, n];
        for (int i = 0; i < n; i++) inv[i, i] = 1;
        for (int c = 0; c < n; c++)
        {
            int pivot = c;
            for (int r = c + 1; r < n; r++)
                if (Math.Abs(a[r, c]) > Math.Abs(a[pivot, c])) pivot = r;
            if (pivot != c)
                for (int j = 0; j < n; j++)
                {
                    (a[c, j], a[pivot, j]) = (a[pivot, j], a[c, j]);
                    (inv[c, j], inv[pivot, j]) = (inv[pivot, j], inv[c, j]);
                }
            double f = 1 / a[c, c];
            for (int j = 0; j < n; j++) { a[c, j] *= f; inv[c, j] *= f; }
            for (int r = 0; r < n; r++)
            {
                if (r == c) continue;
                double t = a[r, c];
                if (t == 0) continue;
                for (int j = 0; j < n; j++) { a[r, j] -= t * a[c, j]; inv[r, j] -= t * inv[c, j]; }
            }
        }
        return inv;
    }
}
