using LlmPress.Quantization;
using LlmPress.Sparsity;
using LlmPress.Tests.Quantization.Gptq;

namespace LlmPress.Tests.Sparsity;

/// <summary>
/// Textbook SparseGPT in double precision: no lazy blocks, no Cholesky update trick. The inverse Hessian G of the
/// columns not yet processed is kept explicitly; after column j every remaining column gets the OBS update
/// w_F −= (w_j − q_j)/G_jj · G_j,F and j is eliminated, G ← G − G_·j·G_j·/G_jj (OBS / OBQ). The mask rule is SparseGPT's:
/// saliency w²/U_kk² (U the upper Cholesky factor of (H + λI)⁻¹, so U_kk² = [H_F⁻¹]_kk for F = k..), chosen on the
/// current weights at each block start (unstructured; running count round(fraction·rows·blockEnd)) or at each group of M
/// (N:M); ties to the lower index (row-major in the block, column in the group). Quantization uses the library's
/// <see cref="ColumnQuantizer"/> on the float-rounded current weights, so this checks the solver, not the formats.
/// </summary>
internal static class SparseGptReference
{
    public sealed record Result(double[] Weight, bool[] Pruned, PackedWeight? Packed);

    public static Result Prune(float[] weight, int rows, int cols, float[] hessian, SparsityPattern pattern, int blockSize,
        QuantFormat? format = null, bool[]? fixedMask = null, double dampPercent = 0.01)
    {
        int n = cols;
        var stored = (float[])weight.Clone();
        var h = GptqReference.StoredHessian(hessian, cols, QuantFormat.Mxfp4()); // no rotation: just symmetric, in double
        for (int i = 0; i < n; i++)
        {
            if (h[i, i] != 0) continue;
            h[i, i] = 1;
            for (int r = 0; r < rows; r++) stored[r * n + i] = 0;
        }
        double mean = 0;
        for (int i = 0; i < n; i++) mean += h[i, i];
        mean /= n;
        for (int i = 0; i < n; i++) h[i, i] += dampPercent * mean;
        var g = GptqReference.Inverse(h, n);
        var uDiag = UpperCholeskyDiagonal(g, n);

        if (fixedMask is null && pattern.IsNOfM) blockSize = (Math.Min(blockSize, n) + pattern.M - 1) / pattern.M * pattern.M;
        var w = new double[rows, n];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < n; c++) w[r, c] = stored[r * n + c];
        var quantizer = format?.CreateColumnQuantizer(rows, cols, stored);
        var mask = fixedMask is null ? new bool[rows * n] : (bool[])fixedMask.Clone();
        var result = new double[rows * n];
        var current = new float[rows * n];
        var values = new float[rows];
        var dq = new float[rows];
        long prunedSoFar = 0;
        for (int j = 0; j < n; j++)
        {
            if (fixedMask is null && !pattern.IsNOfM && pattern.Fraction > 0 && j % blockSize == 0)
            {
                int end = Math.Min(j + blockSize, n), width = end - j;
                long target = (long)Math.Round(pattern.Fraction * rows * (double)end, MidpointRounding.ToEven) - prunedSoFar;
                var order = Enumerable.Range(0, rows * width)
                    .OrderBy(i => Sq(w[i / width, j + i % width]) / Sq(uDiag[j + i % width])).ThenBy(i => i).Take((int)target);
                foreach (int i in order) mask[i / width * n + j + i % width] = true;
                prunedSoFar += target;
            }
            if (fixedMask is null && pattern.IsNOfM && j % pattern.M == 0)
                for (int r = 0; r < rows; r++)
                {
                    var order = Enumerable.Range(j, pattern.M).OrderBy(k => Sq(w[r, k]) / Sq(uDiag[k])).ThenBy(k => k).Take(pattern.N);
                    foreach (int k in order) mask[r * n + k] = true;
                }
            if (quantizer is not null && j % quantizer.GroupSize == 0)
            {
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < n; c++) current[r * n + c] = (float)w[r, c];
                quantizer.ComputeGroupParameters(j / quantizer.GroupSize, current.AsSpan(j), n);
            }
            var q = new double[rows];
            if (quantizer is null)
                for (int r = 0; r < rows; r++) q[r] = mask[r * n + j] ? 0 : w[r, j];
            else
            {
                for (int r = 0; r < rows; r++) values[r] = mask[r * n + j] ? 0f : (float)w[r, j];
                quantizer.QuantizeColumn(j, values, dq);
                for (int r = 0; r < rows; r++) q[r] = dq[r];
            }
            double gjj = g[j, j];
            for (int r = 0; r < rows; r++)
            {
                double e = (w[r, j] - q[r]) / gjj;
                for (int f = j + 1; f < n; f++) w[r, f] -= e * g[j, f];
                w[r, j] = q[r];
                result[r * n + j] = q[r];
            }
            var gj = new double[n];
            for (int f = 0; f < n; f++) gj[f] = g[j, f];
            for (int x = j + 1; x < n; x++)
                for (int y = j + 1; y < n; y++) g[x, y] -= gj[x] * gj[y] / gjj;
        }
        return new Result(result, mask, quantizer?.Build());
    }

    // Diagonal of U with G = UᵀU, U upper (row by row: U_ii² = G_ii − Σ_{k<i} U_ki²).
    private static double[] UpperCholeskyDiagonal(double[,] g, int n)
    {
        var u = new double[n, n];
        var d = new double[n];
        for (int i = 0; i < n; i++)
        {
            double s = g[i, i];
            for (int k = 0; k < i; k++) s -= u[k, i] * u[k, i];
            u[i, i] = Math.Sqrt(s);
            for (int j = i + 1; j < n; j++)
            {
                double t = g[i, j];
                for (int k = 0; k < i; k++) t -= u[k, i] * u[k, j];
                u[i, j] = t / u[i, i];
            }
            d[i] = u[i, i];
        }
        return d;
    }

    private static double Sq(double x) => x * x;
}
