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
            prefill/decode tokens/s of a random-weight model of the SmolLM2-135M shape (window 2048): BF16, FP32, and its
            layers RTN-quantized to INT4, MXFP4 and NVFP4, each decoded with the BF16 LM head and again with an INT8
            one, against the bound set by the memory bandwidth. Each figure is the best of repeated runs; another busy
            process on the machine lowers them.
            """) { json, quick };
        command.SetAction(parse => console.Guard(parse, () => Run(console, parse.GetValue(json), parse.GetValue(quick))));
        return command;
    }

    private sealed record Measurement(string Name, double Value, string Unit, string Detail);

    /// <summary>Three decode runs, each with the memory bandwidth read just before it; a step reads <paramref name="StepBytes"/>.</summary>
    private sealed record DecodeRuns(double[] TokensPerSecond, double[] Bandwidth, long StepBytes)
    {
        public double Best => TokensPerSecond.Max();

        /// <summary>Each run's tokens/s over its bound (bandwidth ÷ bytes per step).</summary>
        public double[] Shares => [.. TokensPerSecond.Select((t, i) => t * StepBytes / (Bandwidth[i] * 1e9))];

        public double MedianShare => Shares.Order().ElementAt(1);

        public string Describe()
        {
            var shares = Shares.Order().ToArray();
            return $"{100 * shares[1]:0}% of the bandwidth bound (median run; runs {100 * shares[0]:0}–{100 * shares[2]:0}%, "
                + $"bandwidth {Bandwidth.Min():0.0}–{Bandwidth.Max():0.0} GB/s, {StepBytes / 1e6:0.0} MB per step)";
        }
    }

    private static int Run(CliConsole console, bool json, bool quick)
    {
        int threads = Parallelism.MaxThreads;
        var results = new List<Measurement>();
        void Add(Measurement m)
        {
            results.Add(m);
            if (!json) console.Log($"  {m.Name}: {Format.Number(m.Value, m.Unit == "×" ? "0.00" : "0.0")} {m.Unit} {m.Detail}");
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
        // Decode: three runs of 64 steps (one run of a few hundred milliseconds is at the mercy of the scheduler), each
        // right after its own bandwidth reading: this shared machine's DRAM bandwidth drifts between ~25 and ~50 GB/s
        // within minutes, so a run is held to the bound of its own moment and the share reported is the median run's.
        long streamBytes = quick ? 64L << 20 : 512L << 20;
        var runTime = TimeSpan.FromSeconds(quick ? 0.02 : 0.3);
        DecodeRuns Decode(LlamaModel m)
        {
            long stepBytes = SpeedBenchmark.DecodeBytesPerToken(m, 32, 64);
            var runs = new DecodeRuns(new double[3], new double[3], stepBytes);
            for (int i = 0; i < 3; i++)
            {
                runs.Bandwidth[i] = Math.Max(lmHeadGBps, KernelBenchmark.MeasureStreamGBps(streamBytes, threads, runTime));
                runs.TokensPerSecond[i] = SpeedBenchmark.MeasureDecode(m, 32, 64);
            }
            return runs;
        }
        double stream = KernelBenchmark.MeasureStreamGBps(streamBytes, threads, minTime);
        // Each bound uses the faster of the plain read and the LM-head GEMV from DRAM (a kernel that demonstrably streams
        // that fast), so a slow bandwidth reading cannot make the bound easy to reach.
        Add(new("memory_bandwidth", Math.Max(stream, lmHeadGBps), "GB/s",
            $"(best of: sum of a {streamBytes >> 20} MiB array {stream:0.0}, LM-head GEMV from DRAM {lmHeadGBps:0.0}; {threads} threads; read again before each decode run)"));
        long headBytes = model.LmHead.WeightBytes;
        var bf16 = Decode(model);
        double bf16Decode = bf16.Best;
        Add(new("decode", bf16Decode, "tokens/s", $"(BF16, after a 32-token prompt, best of 3 × 64 steps, {threads} threads; {bf16.Describe()})"));
        Add(new("decode_bound_share", 100 * bf16.MedianShare, "%", "(BF16 decode's median run, of its bandwidth bound)"));

        var fp32Model = RandomModel.Create(config, DType.F32);
        Add(new("fp32_prefill", SpeedBenchmark.MeasurePrefill(fp32Model, window, repeats: quick ? 1 : 2), "tokens/s",
            $"(same model with FP32 weights, window {window}, {threads} threads)"));
        // The same model with its decoder linears RTN-quantized and run from the packed kernels: with the BF16 LM head,
        // then with an INT8 one.
        foreach (var format in new[] { QuantFormat.Int(4, 128, symmetric: false), QuantFormat.Mxfp4(), QuantFormat.Nvfp4() })
        {
            var packed = RandomModel.Create(config, DType.BF16);
            long layerBytes = PackedModel.QuantizeInPlace(packed, format);
            string name = format.Kind == QuantKind.Int ? "int4" : format.Name;
            var runs = Decode(packed);
            double decode = runs.Best;
            long stepBytes = runs.StepBytes; // every decode step reads all packed layers, the LM head and the KV cache once
            Add(new($"decode_{name}", decode, "tokens/s",
                $"({format.Name}, {(DecodeActivations.Int8 ? "int8" : "exact FP32")} decode activations, {Format.Bytes(layerBytes)} packed + {Format.Bytes(headBytes)} BF16 head + {Format.Bytes(stepBytes - layerBytes - headBytes)} KV cache per token; "
                + $"{decode / bf16Decode:0.00}× BF16 decode; {runs.Describe()})"));
            Add(new($"decode_{name}_bound_share", 100 * runs.MedianShare, "%", $"({format.Name} decode's median run, of its bandwidth bound)"));
            // Prefill against FP32 in alternating rounds, best of each: minutes apart, the two would differ by this
            // machine's drift (±8% between runs) more than by their kernels.
            double prefill = 0, fp32Alongside = 0;
            for (int round = 0; round < (quick ? 1 : 2); round++)
            {
                prefill = Math.Max(prefill, SpeedBenchmark.MeasurePrefill(packed, window, repeats: 1));
                fp32Alongside = Math.Max(fp32Alongside, SpeedBenchmark.MeasurePrefill(fp32Model, window, repeats: 1));
            }
            Add(new($"prefill_{name}", prefill, "tokens/s",
                $"({format.Name}, window {window}; {prefill / fp32Alongside:0.00}× the FP32 prefill measured in alternation, {fp32Alongside:0.0} tokens/s)"));
            Add(new($"prefill_{name}_vs_fp32", prefill / fp32Alongside, "×", $"({format.Name} prefill ÷ FP32 prefill, alternating rounds)"));
            // The same layers with an 8-bit head (`quantize --lm-head int8`; llama.cpp's 4-bit types keep output.weight
            // at 6–8 bits): the BF16 head is about half of a 4-bit step's bytes.
            var headFormat = QuantFormat.Int(8, 128, symmetric: false);
            long int8Head = PackedModel.QuantizeHeadInPlace(packed, headFormat);
            var withHead = Decode(packed);
            Add(new($"decode_{name}_int8_head", withHead.Best, "tokens/s",
                $"({format.Name} layers, {headFormat.Name} head: {Format.Bytes(layerBytes)} + {Format.Bytes(int8Head)} + {Format.Bytes(withHead.StepBytes - layerBytes - int8Head)} KV cache per token; "
                + $"{withHead.Best / bf16Decode:0.00}× BF16 decode; {withHead.Describe()})"));
            Add(new($"decode_{name}_int8_head_bound_share", 100 * withHead.MedianShare, "%", $"({format.Name} + {headFormat.Name} head decode's median run, of its bandwidth bound)"));
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
}
