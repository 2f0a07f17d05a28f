using System.Diagnostics;
using LlmPress.Numerics;
using LlmPress.Quantization;
using LlmPress.Sparsity;

namespace LlmPress.Bench;

/// <summary>
/// `bench prune [rows] [cols] [threads]`: one random layer W ~ N(0, 0.05²) [rows, cols] with the Hessian of 2·cols
/// correlated inputs (rank-16 signal + noise, uneven column scales; SPD): wall time of GPTQ int4-asym-g128 against
/// SparseGPT (50%, 2:4, joint 50% + int4), Wanda, magnitude and iterative OBS, best of 3, with each one's relative output
/// error tr(ΔW·H·ΔWᵀ)/tr(W·H·Wᵀ).
/// </summary>
internal static class PruneBench
{
    public static void Run(int rows, int cols, int threads)
    {
        Parallelism.MaxThreads = threads;
        var rng = new Random(1);
        var w = new float[(long)rows * cols];
        for (long i = 0; i < w.Length; i++) w[i] = (float)(rng.NextGaussian() * 0.05);
        int tokens = 2 * cols, rank = 16;
        var a = new double[rank * cols];
        for (int i = 0; i < a.Length; i++) a[i] = rng.NextGaussian();
        var scale = new double[cols];
        for (int c = 0; c < cols; c++) scale[c] = Math.Exp(0.5 * rng.NextGaussian());
        var x = new float[(long)tokens * cols];
        var z = new double[rank];
        for (int t = 0; t < tokens; t++)
        {
            for (int k = 0; k < rank; k++) z[k] = rng.NextGaussian();
            for (int c = 0; c < cols; c++)
            {
                double v = 0.3 * rng.NextGaussian();
                for (int k = 0; k < rank; k++) v += z[k] * a[k * cols + c];
                x[(long)t * cols + c] = (float)(v * scale[c]);
            }
        }
        var accumulator = new HessianAccumulator(cols);
        accumulator.Add(x, tokens);
        var h = accumulator.GetHessian();
        var half = SparsityPattern.Unstructured(0.5);
        var twoFour = SparsityPattern.NOfM(2, 4);
        var int4 = QuantFormat.Parse("int4-asym-g128");
        Console.WriteLine($"[{rows}, {cols}], {threads} thread(s), H from {tokens} correlated tokens; best of 3 runs");

        Report("GPTQ int4-asym-g128", () => Gptq.Quantize(w, rows, cols, h, int4).Dequantized, w, rows, cols, h);
        Report("SparseGPT 50%", () => SparseGpt.Prune(w, rows, cols, h, half).Weight, w, rows, cols, h);
        Report("SparseGPT 2:4", () => SparseGpt.Prune(w, rows, cols, h, twoFour).Weight, w, rows, cols, h);
        Report("SparseGPT 50% + int4-asym-g128", () => SparseGpt.Prune(w, rows, cols, h, half, new SparseGptOptions { Format = int4 }).Weight,
            w, rows, cols, h);
        Report("Wanda 50%", () => WandaPruner.Prune(w, rows, cols, h, half).Weight, w, rows, cols, h);
        Report("Wanda 2:4", () => WandaPruner.Prune(w, rows, cols, h, twoFour).Weight, w, rows, cols, h);
        Report("magnitude 50%", () => MagnitudePruner.Prune(w, rows, cols, half).Weight, w, rows, cols, h);
        Report("magnitude 2:4", () => MagnitudePruner.Prune(w, rows, cols, twoFour).Weight, w, rows, cols, h);
        foreach (var pattern in new[] { half, twoFour })
        {
            PruneResult? last = null;
            Report($"iterative OBS {pattern}", () => (last = IterativeObs.Prune(w, rows, cols, h, pattern)).Weight, w, rows, cols, h);
            Console.WriteLine($"    iterations {last!.Iterations}, error by iteration: {string.Join(", ", last.ErrorByIteration.Select(e => e.ToString("G4")))}");
        }
    }

    private static void Report(string name, Func<float[]> run, float[] w, int rows, int cols, float[] h)
    {
        double best = double.MaxValue;
        float[] result = [];
        for (int i = 0; i < 3; i++)
        {
            var sw = Stopwatch.StartNew();
            result = run();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        double error = LayerError.RelativeOutputError(w, result, rows, cols, h);
        Console.WriteLine($"  {name,-32} {best * 1000,8:F0} ms   relative output error {error:F5}");
    }
}
