using System.CommandLine;
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
            Measure kernel and model speed on this machine: SGEMM at 2048³ on one thread and 4096³ on all threads, BF16
            weight GEMM at prefill shapes, the decode GEMV's memory bandwidth, XᵀX and Cholesky at GPTQ sizes, and
            prefill/decode tokens/s of a random-weight model of the SmolLM2-135M shape (window 2048). Each figure is the
            best of repeated runs; another busy process on the machine lowers them.
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
        var minTime = TimeSpan.FromSeconds(quick ? 0.05 : 1.5);
        Add(new("sgemm_1thread", KernelBenchmark.MeasureSgemmGflops(n1, 1, minTime), "GFLOP/s", $"(n={n1}, 1 thread)"));
        Add(new("sgemm_all_threads", KernelBenchmark.MeasureSgemmGflops(n2, threads, minTime), "GFLOP/s", $"(n={n2}, {threads} threads)"));

        var config = quick
            ? RandomModel.SmolLM2Shape with { LayerCount = 2, VocabSize = 4096 }
            : RandomModel.SmolLM2Shape;
        int window = quick ? 256 : 2048, d = config.HiddenSize, ff = config.IntermediateSize;
        Add(new("bf16_gemm_mlp", KernelBenchmark.MeasureMultiplyByWeightGflops(window, ff, d, DType.BF16, threads, minTime), "GFLOP/s",
            $"(m={window}, [{ff}×{d}] BF16 weight, {threads} threads)"));
        Add(new("bf16_gemm_lm_head", KernelBenchmark.MeasureMultiplyByWeightGflops(window, config.VocabSize, d, DType.BF16, threads, minTime), "GFLOP/s",
            $"(m={window}, [{config.VocabSize}×{d}] BF16 weight, {threads} threads)"));
        Add(new("bf16_gemv_lm_head", KernelBenchmark.MeasureMultiplyByWeightGBps(1, config.VocabSize, d, DType.BF16, threads, minTime), "GB/s",
            $"(m=1, [{config.VocabSize}×{d}] BF16 weight streamed from memory, {threads} threads)"));
        Add(new("syrk", KernelBenchmark.MeasureSymmetricRankUpdateGflops(window, ff, threads, minTime), "GFLOP/s",
            $"(XᵀX, X [{window}×{ff}], {threads} threads)"));
        Add(new("cholesky", KernelBenchmark.MeasureCholeskyGflops(ff, threads, minTime), "GFLOP/s", $"(n={ff}, n³/3 flops, {threads} threads)"));

        var model = RandomModel.Create(config, DType.BF16);
        Add(new("prefill", SpeedBenchmark.MeasurePrefill(model, window, repeats: quick ? 1 : 2), "tokens/s",
            $"({(quick ? "2-layer " : "")}SmolLM2-135M shape, BF16, window {window}, with LM head and log-likelihood of every position, {threads} threads)"));
        Add(new("decode", SpeedBenchmark.MeasureDecode(model), "tokens/s", $"(BF16, after a 32-token prompt, {threads} threads)"));

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
}
