using LlmPress.Numerics;

// Usage: dotnet run -c Release --project bench/LlmPress.Bench -- [quick|sgemm|weight|linalg|all] [seconds]
//        ... -- gguf [rows] [cols] [threads]                 (ggml codec throughput)
//        ... -- gguf-export [f16 q8_0 ...]                   (export + verify + load of a random 135M checkpoint)
//        ... -- ct-export [int4-asym-g64 mxfp4 ...]          (compressed-tensors export of a random 135M checkpoint, RTN-quantized)
//        ... -- prune [rows] [cols] [threads]               (SparseGPT / Wanda / iterative OBS vs GPTQ on one layer)
//        ... -- peak [rounds]                               (one core's FP32 FMA ceiling)
//        ... -- bdn [BenchmarkDotNet arguments, e.g. --filter '*Gemm*']
//        ... -- tune ROUNDS SIZE THREADS KC,MC,NC ...   (sweeps GEMM blocking)
//        ... -- tune-cholesky N NB ...                      (sweeps the Cholesky block)
//        ... -- prefill-profile [window] [repeats]          (time per DecoderLayer stage, SmolLM2-135M shape)
//        ... -- decode-stages [tokens] [threads]           (time per decode stage vs. its bytes at stream bandwidth)
//        ... -- decode-nll MODEL_DIR TEXT [tokens] [window] [int8|bf16-kv] (teacher-forced decode: int8 activations or a BF16 KV cache vs exact, PPL/KL/top-1)
//        ... -- decode-tps [threads] [runs] [prompt] [f32|bf16] (decode tokens/s per weight form + per-token min/p10/p50 after the prompt; KV cache type)
//        ... -- int8-kernel                                 (Int8DotGemv alone, L2-resident, 1 thread: ns per row·128 columns)
//        ... -- int8-shapes 576x576,576x1536 [rounds]       (Int8Activation.Quantize ns per call; Int8DotGemv per shape, INT4 g128, L2, 1 thread)
//        ... -- hot-scaling                                 (Int8DotGemv on 1 vs 2 threads, each on its own L2-resident matrix: do the cores scale?)
//        ... -- dram-scaling                                (decode GEMVs from DRAM vs a plain sum of the same bytes, 1 and 2 threads, no hand-off)
//        ... -- gemv [threads]                              (one decode GEMV per linear shape and form, µs and GB/s)
//        ... -- attn-decode [keys] [headDim] | handoff      (decode attention µs/call; Parallel.For hand-off cost)
//        ... -- prefill-window N | prefill-cpu N             (tokens/s as `llmpress bench`; 1-thread CPU s per window)
//        ... -- prefill-gemm                                 (one m = 2048 product per linear shape, FP32 weights vs packed forms, ms)
//        ... -- prefill-ab [f32 int4 nvfp4 ...]              (prefill tokens/s per weight form, interleaved rounds)
//        ... -- scale-decode                                 (MXFP4/NVFP4 scale codes → FP32, µs per 55K scales)
//        ... -- depth-baselines MODEL CALIB K OUT [samples] [seqlen]  (exhaustive KL of every K-sub-block drop; optimum and last-K checkpoints)
//        ... -- search-fixtures [MODEL_DIR ...] [--bits B] [--windows N]  (uniform / DP / EvoPress bit allocation on the random-weight fixtures)
// Self-timed modes report the best of repeated runs (see KernelBenchmark).
// DECODE_INT8=0: single-token products with packed 4-bit weights take exact FP32 activations (before/after comparisons in one build).
if (Environment.GetEnvironmentVariable("DECODE_INT8") == "0") LlmPress.Models.DecodeActivations.Int8 = false;
string what = args.Length > 0 ? args[0] : "quick";
if (what == "bdn")
{
    BenchmarkDotNet.Running.BenchmarkSwitcher.FromAssembly(typeof(LlmPress.Bench.GemmBenchmarks).Assembly).Run(args[1..]);
    return 0;
}
if (what == "gguf-export")
{
    LlmPress.Bench.GgufExportBench.Run(args[1..]);
    return 0;
}
if (what == "ct-export")
{
    LlmPress.Bench.CompressedTensorsExportBench.Run(args[1..]);
    return 0;
}
if (what == "gguf")
{
    LlmPress.Bench.GgufCodecBench.Run(args.Length > 1 ? int.Parse(args[1]) : 2048, args.Length > 2 ? int.Parse(args[2]) : 8192,
        args.Length > 3 ? int.Parse(args[3]) : Environment.ProcessorCount);
    return 0;
}
if (what == "prune")
{
    LlmPress.Bench.PruneBench.Run(args.Length > 1 ? int.Parse(args[1]) : 1536, args.Length > 2 ? int.Parse(args[2]) : 576,
        args.Length > 3 ? int.Parse(args[3]) : Environment.ProcessorCount);
    return 0;
}
if (what == "depth-baselines")
{
    LlmPress.Bench.DepthBaselines.Run(args[1], args[2], int.Parse(args[3]), args[4], args.Length > 5 ? int.Parse(args[5]) : 32, args.Length > 6 ? int.Parse(args[6]) : 256);
    return 0;
}
if (what == "search-fixtures")
{
    LlmPress.Bench.SearchFixtures.Run(args[1..]);
    return 0;
}
if (what == "peak")
{
    LlmPress.Bench.FmaPeak.Run(args.Length > 1 ? int.Parse(args[1]) : 8);
    return 0;
}
if (what == "weight-m")
{
    foreach (var m in args[1..])
        foreach (var threads in new[] { 1, 2 })
        {
            int wn = int.Parse(Environment.GetEnvironmentVariable("WN") ?? "1536"), wk = int.Parse(Environment.GetEnvironmentVariable("WK") ?? "576");
            Console.WriteLine($"bf16 m{m} n{wn} k{wk} {threads}T: {KernelBenchmark.MeasureMultiplyByWeightGflops(int.Parse(m), wn, wk, DType.BF16, threads, TimeSpan.FromSeconds(1)):F1} GFLOP/s");
        }
    return 0;
}
if (what == "syrk-parts")
{
    foreach (var (rows, cols, threads) in new[] { (1, 4096, 1), (1, 4096, 2), (2048, 4096, 1), (2048, 4096, 2), (1, 1536, 1) })
    {
        double g = KernelBenchmark.MeasureSymmetricRankUpdateGflops(rows, cols, threads, TimeSpan.FromSeconds(1));
        var proc = System.Diagnostics.Process.GetCurrentProcess();
        var x = KernelBenchmark.Random(new Random(1), (long)rows * cols);
        var h = new float[(long)cols * cols];
        Parallelism.MaxThreads = threads;
        proc.Refresh();
        var cpu0 = proc.TotalProcessorTime;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        SymmetricRankUpdate.Accumulate(x, rows, cols, 1e-3f, h, threads > 1);
        double wall = sw.Elapsed.TotalMilliseconds;
        proc.Refresh();
        Console.WriteLine($"syrk rows{rows} cols{cols} {threads}T: {g:F1} GFLOP/s = {(double)rows * cols * (cols + 1) / g / 1e6:F2} ms; one more run: wall {wall:F1} ms, cpu {(proc.TotalProcessorTime - cpu0).TotalMilliseconds:F1} ms");
    }
    return 0;
}
if (what == "decode-profile")
{
    // Decode tokens/s of the SmolLM2-135M shape in BF16 and packed INT4/NVFP4, on 1 and 2 threads, and the time of one
    // [1536×576] GEMV in each form: what separates the per-token time from the bytes it has to stream.
    var config = LlmPress.Models.RandomModel.SmolLM2Shape;
    var bf16 = LlmPress.Models.RandomModel.Create(config, DType.BF16);
    var int4 = LlmPress.Models.RandomModel.Create(config, DType.BF16);
    LlmPress.Quantization.PackedModel.QuantizeInPlace(int4, LlmPress.Quantization.QuantFormat.Int(4, 128));
    var nv = LlmPress.Models.RandomModel.Create(config, DType.BF16);
    LlmPress.Quantization.PackedModel.QuantizeInPlace(nv, LlmPress.Quantization.QuantFormat.Nvfp4());
    foreach (int threads in new[] { 1, 2 })
    {
        Parallelism.MaxThreads = threads;
        foreach (var (name, model) in new[] { ("bf16", bf16), ("int4", int4), ("nvfp4", nv) })
        {
            double best = 0;
            for (int i = 0; i < 3; i++) best = Math.Max(best, LlmPress.Evaluation.SpeedBenchmark.MeasureDecode(model, 32, 64));
            Console.WriteLine($"decode {name} {threads}T: {best:F1} tokens/s ({1000 / best:F2} ms/token)");
        }
        var x = new float[576];
        var y = new float[1536];
        foreach (var (name, layer) in new[] { ("bf16", bf16.Layers[0].UpProj), ("int4", int4.Layers[0].UpProj), ("nvfp4", nv.Layers[0].UpProj) })
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            int calls = 0;
            double bestUs = double.MaxValue;
            while (clock.Elapsed.TotalSeconds < 1)
            {
                long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
                for (int i = 0; i < 100; i++) layer.Forward(x, 1, y);
                bestUs = Math.Min(bestUs, System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMicroseconds / 100);
                calls += 100;
            }
            Console.WriteLine($"  up_proj GEMV {name} {threads}T: {bestUs:F1} µs/call ({layer.WeightBytes / bestUs / 1e3:F1} GB/s)");
        }
    }
    return 0;
}
if (what == "tune")
{
    Tune.Run(args[4..], int.Parse(args[1]), int.Parse(args[2]), int.Parse(args[3]));
    return 0;
}
if (what == "prefill-profile")
{
    LlmPress.Bench.PrefillProfile.Run(args.Length > 1 ? int.Parse(args[1]) : 2048, args.Length > 2 ? int.Parse(args[2]) : 3);
    return 0;
}
if (what == "dram-scaling")
{
    LlmPress.Bench.DramScaling.Run();
    return 0;
}
if (what == "hot-scaling")
{
    LlmPress.Bench.HotScaling.Run();
    return 0;
}
if (what == "int8-head")
{
    LlmPress.Bench.Int8HeadProbe.Run(args.Length > 1 ? int.Parse(args[1]) : 15);
    return 0;
}
if (what == "int8-shapes")
{
    LlmPress.Bench.Int8ShapeProbe.Run(args[1].Split(','), args.Length > 2 ? int.Parse(args[2]) : 200);
    return 0;
}
if (what == "decode-stages")
{
    LlmPress.Bench.DecodeStages.Run(args.Length > 1 ? int.Parse(args[1]) : 64, args.Length > 2 ? int.Parse(args[2]) : Environment.ProcessorCount);
    return 0;
}
if (what == "decode-nll")
{
    LlmPress.Bench.DecodeNll.Run(args[1], args[2], args.Length > 3 ? int.Parse(args[3]) : 2048, args.Length > 4 ? int.Parse(args[4]) : 256,
        args.Length > 5 ? args[5] : "int8");
    return 0;
}
if (what == "decode-tps")
{
    // Decode tokens/s per weight form, as `llmpress bench` measures it (64 steps after a 32-token prompt), RUNS runs each:
    // prints every run, so before/after builds can be interleaved and compared by median. The per-token times follow a
    // prompt of PROMPT tokens (default 32; longer ones show the cost of attention over a long cache). "first" is the first
    // run of each form, which pays for whatever the JIT has not yet optimized.
    Parallelism.MaxThreads = args.Length > 1 ? int.Parse(args[1]) : Environment.ProcessorCount;
    int runs = args.Length > 2 ? int.Parse(args[2]) : 5;
    int promptLength = args.Length > 3 ? int.Parse(args[3]) : 32;
    var kvType = args.Length > 4 && args[4] == "bf16" ? LlmPress.Numerics.DType.BF16 : LlmPress.Numerics.DType.F32;
    var config = LlmPress.Models.RandomModel.SmolLM2Shape;
    foreach (var form in Environment.GetEnvironmentVariable("FORMS")?.Split(',') ?? ["bf16", "int4", "mxfp4", "nvfp4"])
    {
        var model = RandomModelIn(config, form);
        var tps = new double[runs];
        for (int i = 0; i < runs; i++) tps[i] = LlmPress.Evaluation.SpeedBenchmark.MeasureDecode(model, 32, 64, kvType);
        // Per-token wall times of 192 steps after the prompt: the fastest tokens are the least disturbed by other
        // processes time-sharing the cores (p10 and min are steadier than a run's mean on a busy machine).
        var cache = new LlmPress.Models.KvCache(config, promptLength + 200, kvType);
        var scratch = new LlmPress.Models.ForwardScratch(config);
        var logits = new float[config.VocabSize];
        var prompt = new int[promptLength];
        for (int i = 0; i < prompt.Length; i++) prompt[i] = (i * 7919) % config.VocabSize;
        model.ForwardHidden(prompt, scratch, cache);
        int[] next = [1];
        var ms = new double[192];
        for (int i = 0; i < ms.Length; i++)
        {
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            model.ComputeLogits(model.ForwardHidden(next, scratch, cache), 1, logits);
            next[0] = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits);
            ms[i] = System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }
        Array.Sort(ms);
        var sorted = (double[])tps.Clone();
        Array.Sort(sorted);
        Console.WriteLine($"{form,-6} bench first {tps[0],6:F1} median {sorted[runs / 2],6:F1} best {sorted[^1],6:F1} tokens/s | per token min {ms[0]:F2} p10 {ms[19]:F2} p50 {ms[96]:F2} ms (p10 → {1000 / ms[19]:F0} tokens/s)");
    }
    return 0;
}
if (what == "int8-kernel")
{
    // The integer-dot decode kernel alone (Int8DotGemv) on layer 0's o_proj [576×576] and down_proj [576×1536] per
    // 4-bit form, 1 thread, weights resident in L2: its compute speed in ns per row and 128 columns (best of 30 × 200).
    var config = LlmPress.Models.RandomModel.SmolLM2Shape with { LayerCount = 1, VocabSize = 1024 };
    foreach (var form in new[] { "int4", "mxfp4", "nvfp4" })
    {
        var model = RandomModelIn(config, form);
        foreach (var w in new[] { model.Layers[0].OutputProj.Quantized!, model.Layers[0].DownProj.Quantized! })
        {
            var x = new float[w.Cols];
            for (int i = 0; i < x.Length; i++) x[i] = MathF.Sin(i);
            var y = new float[w.Rows];
            double best = double.MaxValue;
            unsafe
            {
                fixed (float* xp = x, yp = y)
                {
                    var a = LlmPress.Numerics.Kernels.Int8Activation.Quantize(xp, w.Cols);
                    for (int i = 0; i < 2000; i++) LlmPress.Numerics.Kernels.Int8DotGemv.Rows(w, a, yp, 0, w.Rows);
                    for (int r = 0; r < 30; r++)
                    {
                        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
                        for (int i = 0; i < 200; i++) LlmPress.Numerics.Kernels.Int8DotGemv.Rows(w, a, yp, 0, w.Rows);
                        best = Math.Min(best, System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalNanoseconds / 200);
                    }
                }
            }
            Console.WriteLine($"{form,-6} [{w.Rows}×{w.Cols}] {best / 1e3,6:F2} µs  {best / (w.Rows * (w.Cols / 128.0)):F3} ns per row·128 columns");
        }
    }
    return 0;
}
if (what == "gemv")
{
    // One decode GEMV (m = 1) per linear of layer 0 and the LM head, per weight form, 1 thread: best µs per call (the
    // weights of one linear stay in L2/L3 across calls, so this is the kernel's compute speed, not memory's).
    Parallelism.MaxThreads = args.Length > 1 ? int.Parse(args[1]) : 1;
    var config = LlmPress.Models.RandomModel.SmolLM2Shape with { LayerCount = 1 };
    foreach (var form in new[] { "bf16", "int4", "mxfp4", "nvfp4" })
    {
        var model = RandomModelIn(config, form);
        var line = new System.Text.StringBuilder($"{form,-6}");
        foreach (var layer in new[] { model.Layers[0].QueryProj, model.Layers[0].OutputProj, model.Layers[0].UpProj, model.Layers[0].DownProj, model.LmHead })
        {
            var x = new float[layer.InFeatures];
            for (int i = 0; i < x.Length; i++) x[i] = MathF.Sin(i);
            var y = new float[layer.OutFeatures];
            int reps = layer.OutFeatures > 10000 ? 3 : 50;
            double best = double.MaxValue;
            for (int i = 0; i < 200; i++) layer.Forward(x, 1, y); // past the JIT's tiering
            Thread.Sleep(200);
            for (int r = 0; r < 40; r++)
            {
                long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
                for (int i = 0; i < reps; i++) layer.Forward(x, 1, y);
                best = Math.Min(best, System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMicroseconds / reps);
            }
            line.Append($" | {layer.Name.Split('.')[^1]} {best,7:F1} µs {layer.WeightBytes / best / 1e3,5:F1} GB/s");
        }
        Console.WriteLine(line);
    }
    return 0;
}
if (what == "prefill-gemm")
{
    // One prefill product (m = 2048) per linear of layer 0, FP32 weights vs packed forms, 2 threads: best ms.
    Parallelism.MaxThreads = 2;
    var config = LlmPress.Models.RandomModel.SmolLM2Shape with { LayerCount = 1, VocabSize = 1024 };
    int m = 2048;
    foreach (var form in new[] { "f32", "int4", "mxfp4", "nvfp4" })
    {
        var model = form == "f32" ? LlmPress.Models.RandomModel.Create(config, DType.F32) : RandomModelIn(config, form);
        var line = new System.Text.StringBuilder($"{form,-6}");
        double total = 0;
        foreach (var layer in new[] { model.Layers[0].QueryProj, model.Layers[0].KeyProj, model.Layers[0].OutputProj, model.Layers[0].UpProj, model.Layers[0].DownProj })
        {
            var x = new float[m * layer.InFeatures];
            for (int i = 0; i < x.Length; i++) x[i] = MathF.Sin(i);
            var y = new float[m * layer.OutFeatures];
            double best = double.MaxValue;
            for (int r = 0; r < 8; r++)
            {
                long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
                layer.Forward(x, m, y);
                best = Math.Min(best, System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            }
            total += best;
            line.Append($" | {layer.Name.Split('.')[^1]} {best,6:F2} ms");
        }
        Console.WriteLine(line.Append($" | sum {total:F2}"));
    }
    return 0;
}
if (what == "prefill-ab")
{
    // Prefill tokens/s (window 2048, as `llmpress bench`) of FP32 weights vs packed forms, interleaved rounds.
    var config = LlmPress.Models.RandomModel.SmolLM2Shape;
    var forms = args.Length > 1 ? args[1..] : new[] { "f32", "int4" };
    var models = forms.Select(f => f == "f32" ? LlmPress.Models.RandomModel.Create(config, DType.F32) : RandomModelIn(config, f)).ToArray();
    for (int round = 0; round < 4; round++)
        for (int i = 0; i < forms.Length; i++)
            Console.WriteLine($"round {round} {forms[i],-6} {LlmPress.Evaluation.SpeedBenchmark.MeasurePrefill(models[i], 2048, repeats: 1):F1} tokens/s");
    return 0;
}
if (what == "scale-decode")
{
    // The scale decoding a packed MXFP4/NVFP4 GEMV does before its rows: one [1536, 36] matrix's scales (NVFP4 up_proj),
    // in 8 row slices.
    var codes = new byte[1536 * 36];
    new Random(1).NextBytes(codes);
    for (int i = 0; i < codes.Length; i++) codes[i] = (byte)(codes[i] % 120 + 1);
    var dst = new float[codes.Length / 8];
    foreach (var coding in new[] { ScaleCoding.E8M0, ScaleCoding.E4M3 })
    {
        double best = double.MaxValue;
        var table = new LlmPress.Numerics.Kernels.ScaleCodeTable(coding, 3f);
        for (int r = 0; r < 200; r++)
        {
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            // As a GEMV's 8 work items do: a slice of rows each, into one reused L1-sized buffer.
            for (int slice = 0; slice < 8; slice++)
                LlmPress.Numerics.Kernels.ScaleCodeDecoder.Decode(codes.AsSpan(slice * codes.Length / 8, codes.Length / 8), table, dst);
            best = Math.Min(best, System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMicroseconds);
        }
        Console.WriteLine($"{coding}: {best:F2} µs for {codes.Length} scales");
    }
    return 0;
}
if (what == "handoff")
{
    // Cost of one Parallel.For over 8 tiny chunks on 2 threads (the decode GEMVs' fork-join), best and median of batches.
    var options = new ParallelOptions { MaxDegreeOfParallelism = 2 };
    var sink = new double[8];
    Action<int> body = i => { double v = 0; for (int j = 0; j < 200; j++) v += Math.Sqrt(j + i); sink[i] = v; };
    var us = new double[200];
    for (int r = 0; r < us.Length; r++)
    {
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        for (int i = 0; i < 100; i++) Parallel.For(0, 8, options, body);
        us[r] = System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMicroseconds / 100;
    }
    long s0 = System.Diagnostics.Stopwatch.GetTimestamp();
    for (int i = 0; i < 10000; i++) for (int c = 0; c < 8; c++) body(c);
    double serial = System.Diagnostics.Stopwatch.GetElapsedTime(s0).TotalMicroseconds / 10000;
    Array.Sort(us);
    Console.WriteLine($"Parallel.For(8 chunks, 2 threads): best {us[0]:F2} µs, median {us[100]:F2} µs per call; same work serial {serial:F2} µs");
    return 0;
}
if (what == "attn-decode")
{
    // One decode step of attention (9 heads / 3 KV heads, head_dim 64 or as given) over a cache of N positions laid out
    // as the KV cache is (head-major), 1 thread.
    Parallelism.MaxThreads = 1;
    int keys = args.Length > 1 ? int.Parse(args[1]) : 96;
    int headDim = args.Length > 2 ? int.Parse(args[2]) : 64;
    var rng = new Random(1);
    var q = KernelBenchmark.Random(rng, 9 * headDim);
    var k = KernelBenchmark.Random(rng, keys * 3 * headDim);
    var v = KernelBenchmark.Random(rng, keys * 3 * headDim);
    var o = new float[9 * headDim];
    double best = double.MaxValue;
    for (int r = 0; r < 200; r++)
    {
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        for (int i = 0; i < 100; i++)
            LlmPress.Models.CausalAttention.Forward(q, k, v, LlmPress.Models.KvLayout.HeadMajor(keys, headDim), 1, keys - 1, 9, 3, headDim, null, o);
        best = Math.Min(best, System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMicroseconds / 100);
    }
    Console.WriteLine($"attention decode over {keys} keys, heads of {headDim}: {best:F2} µs/call");
    return 0;
}
if (what == "prefill-window")
{
    // Tokens/s of SpeedBenchmark.MeasurePrefill (what `llmpress bench` reports), several times.
    var model = LlmPress.Models.RandomModel.Create(LlmPress.Models.RandomModel.SmolLM2Shape, DType.BF16);
    for (int i = 0; i < int.Parse(args[1]); i++)
        Console.WriteLine($"prefill 2048: {LlmPress.Evaluation.SpeedBenchmark.MeasurePrefill(model, 2048, repeats: 1):F0} tokens/s");
    return 0;
}
if (what == "prefill-cpu")
{
    // One thread, process CPU seconds per 2048-token window with LM head + NLL (robust to other processes time-sharing the cores).
    Parallelism.MaxThreads = 1;
    var model = LlmPress.Models.RandomModel.Create(LlmPress.Models.RandomModel.SmolLM2Shape, DType.BF16);
    var scorer = new LlmPress.Evaluation.WindowScorer(model);
    var tokens = new int[2048];
    var rng = new Random(7);
    for (int i = 0; i < tokens.Length; i++) tokens[i] = rng.Next(model.Config.VocabSize);
    var proc = System.Diagnostics.Process.GetCurrentProcess();
    for (int i = 0; i <= int.Parse(args[1]); i++)
    {
        proc.Refresh();
        var c0 = proc.TotalProcessorTime;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        scorer.ScoreWindow(tokens, 0);
        proc.Refresh();
        Console.WriteLine($"window cpu {(proc.TotalProcessorTime - c0).TotalSeconds:F2} s, wall {sw.Elapsed.TotalSeconds:F2} s{(i == 0 ? " (warm-up)" : "")}");
    }
    return 0;
}
if (what == "tune-cholesky")
{
    foreach (var nb in args[2..])
    {
        LlmPress.Numerics.Cholesky.BlockSize = int.Parse(nb);
        int threads = int.Parse(Environment.GetEnvironmentVariable("THREADS") ?? "1");
        Console.WriteLine($"nb {nb}: n{args[1]} {threads}T {KernelBenchmark.MeasureCholeskyGflops(int.Parse(args[1]), threads, TimeSpan.FromSeconds(2)):F1} GFLOP/s");
    }
    return 0;
}
double secs = args.Length > 1 ? double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 2;
var t = TimeSpan.FromSeconds(secs);

if (what is "sgemm" or "all" or "quick")
{
    Console.WriteLine($"sgemm 2048^3 1T: {KernelBenchmark.MeasureSgemmGflops(2048, 1, t):F1} GFLOP/s");
    if (what != "quick") Console.WriteLine($"sgemm 4096^3 2T: {KernelBenchmark.MeasureSgemmGflops(4096, 2, t):F1} GFLOP/s");
    Console.WriteLine($"sgemm attn 256x2048x64 B^T 1T: {KernelBenchmark.MeasureSgemmGflops(256, 2048, 64, false, true, 1, t):F1} GFLOP/s");
    Console.WriteLine($"sgemm attn 256x64x2048 1T: {KernelBenchmark.MeasureSgemmGflops(256, 64, 2048, false, false, 1, t):F1} GFLOP/s");
}
if (what is "weight" or "all")
{
    Console.WriteLine($"weight bf16 m2048 n1536 k576 2T: {KernelBenchmark.MeasureMultiplyByWeightGflops(2048, 1536, 576, DType.BF16, 2, t):F1} GFLOP/s");
    Console.WriteLine($"weight bf16 m2048 n576 k1536 2T: {KernelBenchmark.MeasureMultiplyByWeightGflops(2048, 576, 1536, DType.BF16, 2, t):F1} GFLOP/s");
    Console.WriteLine($"weight bf16 m2048 n49152 k576 2T (LM head): {KernelBenchmark.MeasureMultiplyByWeightGflops(2048, 49152, 576, DType.BF16, 2, t):F1} GFLOP/s");
    Console.WriteLine($"weight bf16 m2048 n1536 k576 1T: {KernelBenchmark.MeasureMultiplyByWeightGflops(2048, 1536, 576, DType.BF16, 1, t):F1} GFLOP/s");
    Console.WriteLine($"weight bf16 m1 n1536 k576 2T: {KernelBenchmark.MeasureMultiplyByWeightGBps(1, 1536, 576, DType.BF16, 2, t):F1} GB/s");
    Console.WriteLine($"weight bf16 m1 n49152 k576 2T: {KernelBenchmark.MeasureMultiplyByWeightGBps(1, 49152, 576, DType.BF16, 2, t):F1} GB/s");
    Console.WriteLine($"weight bf16 m1 n49152 k576 1T: {KernelBenchmark.MeasureMultiplyByWeightGBps(1, 49152, 576, DType.BF16, 1, t):F1} GB/s");
}
if (what is "linalg" or "all")
{
    Console.WriteLine($"syrk rows2048 cols1536 1T: {KernelBenchmark.MeasureSymmetricRankUpdateGflops(2048, 1536, 1, t):F1} GFLOP/s");
    Console.WriteLine($"syrk rows2048 cols4096 2T: {KernelBenchmark.MeasureSymmetricRankUpdateGflops(2048, 4096, 2, t):F1} GFLOP/s");
    Console.WriteLine($"cholesky n1536 1T: {KernelBenchmark.MeasureCholeskyGflops(1536, 1, t):F1} GFLOP/s");
    Console.WriteLine($"cholesky n4096 2T: {KernelBenchmark.MeasureCholeskyGflops(4096, 2, t):F1} GFLOP/s");
    Console.WriteLine($"upper factor of inverse n1536 2T: {KernelBenchmark.MeasureUpperFactorOfInverseSeconds(1536, 2, t) * 1e3:F1} ms");
    Console.WriteLine($"hadamard 1024 x 4096 2T: {KernelBenchmark.MeasureHadamardGBps(1024, 4096, 2, t):F1} GB/s");
    Console.WriteLine($"hadamard 16 x 65536 1T: {KernelBenchmark.MeasureHadamardGBps(16, 65536, 1, t):F1} GB/s");
}
return 0;

// A random-weight model of this shape with BF16 weights, its decoder layers RTN-quantized in memory for "int4"
// (g128), "mxfp4" or "nvfp4" (packed kernels), left BF16 for "bf16".
static LlmPress.Models.LlamaModel RandomModelIn(LlmPress.Models.ModelConfig config, string form)
{
    var model = LlmPress.Models.RandomModel.Create(config, DType.BF16);
    if (form != "bf16")
        LlmPress.Quantization.PackedModel.QuantizeInPlace(model, form switch
        {
            "int4" => LlmPress.Quantization.QuantFormat.Int(4, 128),
            "mxfp4" => LlmPress.Quantization.QuantFormat.Mxfp4(),
            _ => LlmPress.Quantization.QuantFormat.Nvfp4(),
        });
    return model;
}
