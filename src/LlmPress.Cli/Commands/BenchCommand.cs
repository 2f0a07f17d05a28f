using System.CommandLine;
using System.Diagnostics;
using LlmPress.Evaluation;
using LlmPress.Models;
using LlmPress.Numerics;

namespace LlmPress.Cli.Commands;

/// <summary>`llmpress bench`: kernel GFLOP/s and model tokens/s on this machine.</summary>
internal static class BenchCommand
{
    public static Command Create(CliConsole console)
    {
        var json = new Option<bool>("--json") { Description = "Print the measurements as JSON on stdout." };
        var quick = new Option<bool>("--quick") { Description = "Small sizes (seconds, for a smoke test) instead of the targets' sizes." };
        var command = new Command("bench", """
            Measure kernel and model speed: SGEMM at 2048³ on one thread and 4096³ on all threads, BF16 weight GEMM at
            prefill shapes, and prefill/decode tokens/s of a random-weight model of the SmolLM2-135M shape (window 2048).
            """) { json, quick };
        command.SetAction(parse => console.Guard(parse, () => Run(console, parse.GetValue(json), parse.GetValue(quick))));
        return command;
    }

    private sealed record Measurement(string Name, double Value, string Unit, string Detail);

    private static int Run(CliConsole console, bool json, bool quick)
    {
        int threads = Parallelism.MaxThreads;
        var results = new List<Measurement>();
        void Add(Measurement m)
        {
            results.Add(m);
            if (!json) console.Log($"  {m.Name}: {Format.Number(m.Value, "0.0")} {m.Unit} {m.Detail}");
        }

        int n1 = quick ? 256 : 2048, n2 = quick ? 512 : 4096;
        Add(new("sgemm_1thread", WithThreads(1, () => SgemmGflops(n1)), "GFLOP/s", $"(n={n1}, 1 thread)"));
        Add(new("sgemm_all_threads", SgemmGflops(n2), "GFLOP/s", $"(n={n2}, {threads} threads)"));

        var config = quick
            ? RandomModel.SmolLM2Shape with { LayerCount = 2, VocabSize = 4096 }
            : RandomModel.SmolLM2Shape;
        int window = quick ? 256 : 2048;
        var model = RandomModel.Create(config, DType.BF16);
        Add(new("bf16_gemm_mlp", WeightGemmGflops(model.Layers[0].UpProj, window), "GFLOP/s", $"(m={window}, [{config.IntermediateSize}×{config.HiddenSize}] BF16)"));
        Add(new("prefill", SpeedBenchmark.MeasurePrefill(model, window, repeats: quick ? 1 : 2), "tokens/s",
            $"({(quick ? "2-layer " : "")}SmolLM2-135M shape, BF16, window {window}, logits for every position, {threads} threads)"));
        Add(new("decode", SpeedBenchmark.MeasureDecode(model), "tokens/s", "(BF16, after a 32-token prompt)"));

        if (json)
        {
            console.WriteJson(new Dictionary<string, object>
            {
                ["threads"] = threads,
                ["quick"] = quick,
                ["results"] = results.ToDictionary(r => r.Name, r => (object)new Dictionary<string, object> { ["value"] = r.Value, ["unit"] = r.Unit }),
            });
        }
        return 0;
    }

    private static T WithThreads<T>(int threads, Func<T> f)
    {
        int saved = Parallelism.MaxThreads;
        Parallelism.MaxThreads = Math.Min(threads, saved);
        try { return f(); }
        finally { Parallelism.MaxThreads = saved; }
    }

    /// <summary>Best of several timed runs after a warm-up; 2n³ flops per product.</summary>
    private static double SgemmGflops(int n)
    {
        var rng = new Random(3);
        var a = new float[n * n];
        var b = new float[n * n];
        var c = new float[n * n];
        for (int i = 0; i < a.Length; i++) { a[i] = (float)rng.NextDouble() - 0.5f; b[i] = (float)rng.NextDouble() - 0.5f; }
        return BestRate(2.0 * n * n * n, () => Gemm.Sgemm(false, false, n, n, n, 1f, a, n, b, n, 0f, c, n));
    }

    private static double WeightGemmGflops(LinearLayer layer, int m)
    {
        var x = new float[m * layer.InFeatures];
        var y = new float[m * layer.OutFeatures];
        for (int i = 0; i < x.Length; i++) x[i] = (i % 13) * 0.1f - 0.6f;
        return BestRate(2.0 * m * layer.InFeatures * layer.OutFeatures, () => layer.Forward(x, m, y));
    }

    private static double BestRate(double flops, Action run)
    {
        run(); // warm-up: JIT tiers and page faults
        double best = double.MaxValue, total = 0;
        for (int i = 0; i < 10 && (i < 3 || total < 2.0); i++)
        {
            var clock = Stopwatch.StartNew();
            run();
            double s = clock.Elapsed.TotalSeconds;
            total += s;
            best = Math.Min(best, s);
        }
        return flops / best / 1e9;
    }
}
