using System.CommandLine;
using LlmPress.Evaluation;
using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Quantization;

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
        double lmHeadGBps = KernelBenchmark.MeasureMultiplyByWeightGBps(1, config.VocabSize, d, DType.BF16, threads, minTime, fromMemory: true);
        Add(new("bf16_gemv_lm_head", lmHeadGBps, "GB/s", $"(m=1, [{config.VocabSize}×{d}] BF16 weight read from DRAM (caches flushed before each call), {threads} threads)"));
        Add(new("syrk", KernelBenchmark.MeasureSymmetricRankUpdateGflops(window, ff, threads, minTime), "GFLOP/s",
            $"(XᵀX, X [{window}×{ff}], {threads} threads)"));
        Add(new("cholesky", KernelBenchmark.MeasureCholeskyGflops(ff, threads, minTime), "GFLOP/s", $"(n={ff}, n³/3 flops, {threads} threads)"));

        var model = RandomModel.Create(config, DType.BF16);
        Add(new("prefill", SpeedBenchmark.MeasurePrefill(model, window, repeats: quick ? 1 : 2), "tokens/s",
            $"({(quick ? "2-layer " : "")}SmolLM2-135M shape, BF16, window {window}, with LM head and log-likelihood of every position, {threads} threads)"));
        // Decode: best of three runs of 64 steps (one run of a few hundred milliseconds is at the mercy of the scheduler).
        double Decode(LlamaModel m) => Math.Max(Math.Max(SpeedBenchmark.MeasureDecode(m, 32, 64), SpeedBenchmark.MeasureDecode(m, 32, 64)),
            SpeedBenchmark.MeasureDecode(m, 32, 64));
        double stream = KernelBenchmark.MeasureStreamGBps(quick ? 64 << 20 : 512 << 20, threads, minTime);
        // The bound uses the faster of the plain read and the LM-head GEMV (a kernel that demonstrably streams that fast),
        // so a slow bandwidth reading cannot make the bound easy to reach.
        double bandwidth = Math.Max(stream, lmHeadGBps);
        Add(new("memory_bandwidth", bandwidth, "GB/s", $"(best of: sum of a {(quick ? 64 : 512)} MiB array {stream:0.0}, LM-head GEMV {lmHeadGBps:0.0}; {threads} threads)"));
        long headBytes = model.LmHead.WeightBytes;
        double bf16Decode = Decode(model);
        double bf16Bound = bandwidth * 1e9 / SpeedBenchmark.DecodeBytesPerToken(model, 32, 64);
        Add(new("decode", bf16Decode, "tokens/s", $"(BF16, after a 32-token prompt, best of 3 × 64 steps, {threads} threads; "
            + $"{100 * bf16Decode / bf16Bound:0}% of the {bf16Bound:0} tokens/s bandwidth bound)"));

        Add(new("fp32_prefill", MeasureFp32Prefill(config, window, quick), "tokens/s", $"(same model with FP32 weights, window {window}, {threads} threads)"));
        // The same model with its decoder linears RTN-quantized and run from the packed kernels (LM head stays BF16).
        foreach (var format in new[] { QuantFormat.Int(4, 128, symmetric: false), QuantFormat.Mxfp4(), QuantFormat.Nvfp4() })
        {
            var packed = RandomModel.Create(config, DType.BF16);
            long layerBytes = PackedModel.QuantizeInPlace(packed, format);
            string name = format.Kind == QuantKind.Int ? "int4" : format.Name;
            double decode = Decode(packed);
            // Bound: every decode step reads all packed layers, the LM head and the KV cache once.
            long stepBytes = SpeedBenchmark.DecodeBytesPerToken(packed, 32, 64);
            double bound = bandwidth * 1e9 / stepBytes;
            Add(new($"decode_{name}", decode, "tokens/s",
                $"({format.Name}, {(DecodeActivations.Int8 ? "int8" : "exact FP32")} decode activations, {Format.Bytes(layerBytes)} packed + {Format.Bytes(headBytes)} BF16 head + {Format.Bytes(stepBytes - layerBytes - headBytes)} KV cache per token; "
                + $"{decode / bf16Decode:0.00}× BF16 decode, {100 * decode / bound:0}% of the {bound:0} tokens/s bandwidth bound)"));
            Add(new($"prefill_{name}", SpeedBenchmark.MeasurePrefill(packed, window, repeats: 1), "tokens/s", $"({format.Name}, window {window})"));
        }

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

    private static double MeasureFp32Prefill(ModelConfig config, int window, bool quick)
    {
        var model = RandomModel.Create(config, DType.F32);
        return SpeedBenchmark.MeasurePrefill(model, window, repeats: quick ? 1 : 2);
    }
}
