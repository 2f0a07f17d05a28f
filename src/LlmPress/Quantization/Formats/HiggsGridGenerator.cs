using System.Globalization;
using System.Text;
using LlmPress.Numerics;

namespace LlmPress.Quantization;

/// <summary>
/// Computes the HIGGS grids stored in Resources/higgs-grids.json, so the resource is reproducible rather than an opaque
/// blob. Regenerate it with the generating test (tests/LlmPress.Tests/Quantization/HiggsGridTests.cs,
/// <c>LLMPRESS_REGENERATE_HIGGS_GRIDS=1 dotnet test --filter RegenerateResource</c>), which calls <see cref="GenerateResourceJson"/>.
/// </summary>
/// <remarks>
/// p = 1: the Lloyd–Max quantizer of N(0, 1), iterated on the density itself (cell centroids in closed form,
/// (φ(a) − φ(b))/(Φ(b) − Φ(a))), so it is exact to FP64 rounding; these are transformers' published values.
/// p = 2: stochastic Lloyd (mini-batch CLVQ, ALGORITHMS.md §4.1) on seeded N(0, I₂) samples: each step draws a fresh
/// batch, assigns it to the nearest points and moves every point towards its cell's centroid by γ_t, with γ_t = 1 for
/// the first half of the steps and then A/(A + t − T/2) so the later steps average out the sampling noise. The best of
/// a few seeds (lowest MSE on a common validation sample) is kept. N(0, I₂) is rotation-invariant, so a grid is only
/// defined up to rotation and reflection; points are listed by radius, then angle.
/// </remarks>
internal static class HiggsGridGenerator
{
    /// <summary>Settings of the stochastic generator; the defaults are those the resource was made with.</summary>
    public sealed record Settings
    {
        public int Steps { get; init; } = 1000;
        public int BatchSize { get; init; } = 1 << 16;
        public double Averaging { get; init; } = 20;
        public int[] Seeds { get; init; } = [1, 2, 3];
        public int ValidationSamples { get; init; } = 1 << 22;
        public int ValidationSeed { get; init; } = 12345;
    }

    // ---- p = 1 ----

    /// <summary>The n-point Lloyd–Max quantizer of N(0, 1), ascending, and its MSE.</summary>
    public static double[] LloydMax(int n, out double mse, int maxIterations = 1_000_000, double tolerance = 1e-14)
    {
        var g = new double[n];
        for (int i = 0; i < n; i++) g[i] = -2.0 + 4.0 * (i + 0.5) / n;
        var next = new double[n];
        for (int iteration = 0; iteration < maxIterations; iteration++)
        {
            double change = 0;
            for (int i = 0; i < n; i++)
            {
                double a = i == 0 ? double.NegativeInfinity : 0.5 * (g[i - 1] + g[i]);
                double b = i == n - 1 ? double.PositiveInfinity : 0.5 * (g[i] + g[i + 1]);
                next[i] = (Pdf(a) - Pdf(b)) / (Cdf(b) - Cdf(a));
            }
            for (int i = 0; i < n; i++) // keep the exact symmetry
            {
                double v = 0.5 * (next[i] - next[n - 1 - i]);
                change = Math.Max(change, Math.Abs(v - g[i]));
                g[i] = v;
            }
            if (change < tolerance) break;
        }
        // MSE = E[x²] − Σ P_i·g_i² for centroids g_i of cells with probabilities P_i.
        double explained = 0;
        for (int i = 0; i < n; i++)
        {
            double a = i == 0 ? double.NegativeInfinity : 0.5 * (g[i - 1] + g[i]);
            double b = i == n - 1 ? double.PositiveInfinity : 0.5 * (g[i] + g[i + 1]);
            explained += (Cdf(b) - Cdf(a)) * g[i] * g[i];
        }
        mse = 1 - explained;
        return g;
    }

    private static double Pdf(double x) => double.IsInfinity(x) ? 0 : Math.Exp(-0.5 * x * x) / Math.Sqrt(2 * Math.PI);

    /// <summary>Φ(x) = ½ + φ(x)·Σ_k x^(2k+1)/(2k+1)!! (all terms of one sign: accurate to FP64 rounding for |x| ≤ 9).</summary>
    internal static double Cdf(double x)
    {
        if (x <= -9) return 0;
        if (x >= 9) return 1;
        double term = x, sum = x, x2 = x * x;
        for (int k = 1; k < 500 && Math.Abs(term) > 1e-18 * Math.Abs(sum); k++)
        {
            term *= x2 / (2 * k + 1);
            sum += term;
        }
        return 0.5 + Pdf(x) * sum;
    }

    // ---- p = 2 (any p ≤ 2) ----

    /// <summary>The best grid over <see cref="Settings.Seeds"/> and its validation MSE per coordinate.</summary>
    public static float[] Generate(int dimension, int count, Settings settings, out double mse)
    {
        float[]? best = null;
        mse = double.PositiveInfinity;
        foreach (int seed in settings.Seeds)
        {
            var points = StochasticLloyd(dimension, count, seed, settings);
            double m = MonteCarloMse(new HiggsGrid(dimension, points), settings.ValidationSamples, settings.ValidationSeed);
            if (m < mse)
            {
                mse = m;
                best = points;
            }
        }
        return best!;
    }

    /// <summary>One seeded stochastic-Lloyd run; points [n, p], sorted by radius then angle.</summary>
    public static float[] StochasticLloyd(int dimension, int count, int seed, Settings settings)
    {
        var random = new Random(seed);
        var g = new double[count * dimension];
        for (int i = 0; i < g.Length; i++) g[i] = random.NextGaussian();
        int batch = settings.BatchSize;
        var samples = new float[dimension][];
        for (int d = 0; d < dimension; d++) samples[d] = new float[batch];
        var codes = new byte[batch];
        var sums = new double[count * dimension];
        var counts = new long[count];
        var grid = new float[g.Length];
        int half = settings.Steps / 2;
        for (int step = 0; step < settings.Steps; step++)
        {
            for (int s = 0; s < batch; s++)
                for (int d = 0; d < dimension; d++) samples[d][s] = (float)random.NextGaussian();
            for (int i = 0; i < g.Length; i++) grid[i] = (float)g[i];
            Assign(new HiggsGrid(dimension, grid), samples, batch, codes);
            Array.Clear(sums);
            Array.Clear(counts);
            for (int s = 0; s < batch; s++)
            {
                int j = codes[s];
                counts[j]++;
                for (int d = 0; d < dimension; d++) sums[j * dimension + d] += samples[d][s];
            }
            double gamma = step < half ? 1.0 : settings.Averaging / (settings.Averaging + step - half);
            for (int j = 0; j < count; j++)
            {
                if (counts[j] == 0) continue;
                for (int d = 0; d < dimension; d++)
                {
                    double centroid = sums[j * dimension + d] / counts[j];
                    g[j * dimension + d] += gamma * (centroid - g[j * dimension + d]);
                }
            }
        }
        return Sorted(g, dimension, count);
    }

    /// <summary>Mean squared error per coordinate of nearest-point rounding of seeded N(0, I_p) samples.</summary>
    public static double MonteCarloMse(HiggsGrid grid, int samples, int seed)
    {
        var random = new Random(seed);
        int p = grid.Dimension;
        const int chunk = 1 << 16;
        var coordinates = new float[p][];
        for (int d = 0; d < p; d++) coordinates[d] = new float[chunk];
        var codes = new byte[chunk];
        var points = grid.Points;
        double total = 0;
        for (int done = 0; done < samples; done += chunk)
        {
            int m = Math.Min(chunk, samples - done);
            for (int s = 0; s < m; s++)
                for (int d = 0; d < p; d++) coordinates[d][s] = (float)random.NextGaussian();
            Assign(grid, coordinates, m, codes);
            for (int s = 0; s < m; s++)
                for (int d = 0; d < p; d++)
                {
                    double e = coordinates[d][s] - points[codes[s] * p + d];
                    total += e * e;
                }
        }
        return total / ((double)samples * p);
    }

    // Nearest point of every sample, in parallel chunks (each sample's code does not depend on the split).
    private static void Assign(HiggsGrid grid, float[][] samples, int n, byte[] codes)
    {
        const int chunk = 4096;
        Parallel.For(0, (n + chunk - 1) / chunk, Parallelism.Options, c =>
        {
            int start = c * chunk, length = Math.Min(chunk, n - start);
            grid.Nearest(samples[0].AsSpan(start, length), grid.Dimension == 2 ? samples[1].AsSpan(start, length) : default,
                codes.AsSpan(start, length), vectorized: true);
        });
    }

    private static float[] Sorted(double[] g, int dimension, int count)
    {
        var order = Enumerable.Range(0, count)
            .Select(j => (Index: j, Radius: Math.Round(Norm(g, j, dimension), 6), Angle: dimension == 2 ? Math.Atan2(g[j * 2 + 1], g[j * 2]) : g[j]))
            .OrderBy(t => t.Radius).ThenBy(t => t.Angle).Select(t => t.Index).ToArray();
        var result = new float[count * dimension];
        for (int k = 0; k < count; k++)
            for (int d = 0; d < dimension; d++) result[k * dimension + d] = (float)g[order[k] * dimension + d];
        return result;
    }

    private static double Norm(double[] g, int j, int dimension)
    {
        double s = 0;
        for (int d = 0; d < dimension; d++) s += g[j * dimension + d] * g[j * dimension + d];
        return Math.Sqrt(s);
    }

    // ---- the resource ----

    /// <summary>The whole resource file: every supported (p, n) grid with its MSE and how it was made.</summary>
    public static string GenerateResourceJson(Settings settings)
    {
        var json = new StringBuilder();
        json.Append("{\n  \"comment\": \"HIGGS grids: n points in p dimensions, MSE-optimal for N(0, I_p). Generated by ");
        json.Append("LlmPress.Quantization.HiggsGridGenerator; p = 1 by Lloyd-Max on the Gaussian density, p = 2 by seeded stochastic Lloyd. ");
        json.Append("points are [n, p] row-major; mse is per coordinate.\",\n  \"grids\": [\n");
        var list = new List<string>();
        foreach (int n in (int[])[4, 8, 16])
        {
            var g = LloydMax(n, out double mse);
            list.Add(Entry(1, n, "lloyd-max on the N(0,1) density", mse, g.Select(v => (float)v).ToArray()));
        }
        foreach (int n in (int[])[16, 64, 256])
        {
            var g = Generate(2, n, settings, out double mse);
            string method = string.Create(CultureInfo.InvariantCulture,
                $"stochastic lloyd: steps {settings.Steps}, batch {settings.BatchSize}, averaging {settings.Averaging}, seeds [{string.Join(", ", settings.Seeds)}], validation {settings.ValidationSamples} samples seed {settings.ValidationSeed}");
            list.Add(Entry(2, n, method, mse, g));
        }
        json.Append(string.Join(",\n", list));
        json.Append("\n  ]\n}\n");
        return json.ToString();
    }

    private static string Entry(int p, int n, string method, double mse, float[] points)
    {
        var values = new StringBuilder();
        for (int i = 0; i < points.Length; i++)
        {
            if (i > 0) values.Append(i % 8 == 0 ? ",\n      " : ", ");
            values.Append(points[i].ToString("R", CultureInfo.InvariantCulture));
        }
        return string.Create(CultureInfo.InvariantCulture,
            $"    {{\n      \"p\": {p}, \"n\": {n}, \"mse\": {mse:R},\n      \"method\": \"{method}\",\n      \"points\": [\n      {values}\n      ]\n    }}");
    }
}
