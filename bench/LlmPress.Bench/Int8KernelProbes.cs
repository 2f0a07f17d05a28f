using System.Diagnostics;
using LlmPress.Numerics;
using LlmPress.Numerics.Kernels;
using LlmPress.Quantization;

namespace LlmPress.Bench;

/// <summary>
/// The integer-dot decode kernel's compute speed: <see cref="Int8Activation.Quantize"/> per call (run on the calling
/// thread before each decode GEMV), then <see cref="Int8DotGemv"/> on INT4 g128 matrices of the given shapes, resident
/// in L2, 1 thread, best of interleaved rounds. Usage: ... -- int8-shapes 576x576,576x1536,1536x576 [rounds]
/// </summary>
internal static unsafe class Int8ShapeProbe
{
    /// <summary>A random [rows, cols] matrix as the kernel runs it: INT4 with zero points, groups of 128.</summary>
    internal static QuantizedMatrix RandomInt4(Random rng, int rows, int cols) =>
        KernelMatrix.TryCreate(QuantFormat.Int(4, 128).Quantize(KernelBenchmark.Random(rng, (long)rows * cols), rows, cols))!;

    public static void Run(string[] shapes, int rounds)
    {
        var rng = new Random(5);
        var mats = new List<(string Shape, QuantizedMatrix Matrix)>();
        foreach (var s in shapes)
        {
            var p = s.Split('x');
            mats.Add((s, RandomInt4(rng, int.Parse(p[0]), int.Parse(p[1]))));
        }
        var best = new double[mats.Count]; Array.Fill(best, double.MaxValue);
        var x = new float[8192]; for (int i = 0; i < x.Length; i++) x[i] = MathF.Sin(i);
        var y = new float[8192];
        fixed (float* px = x, py = y)
            for (int r = 0; r < rounds; r++)
                for (int i = 0; i < mats.Count; i++)
                {
                    var m = mats[i].Matrix;
                    var a = Int8Activation.Quantize(px, m.Cols);
                    long t0 = Stopwatch.GetTimestamp();
                    for (int k = 0; k < 100; k++) Int8DotGemv.Rows(m, a, py, 0, m.Rows);
                    best[i] = Math.Min(best[i], Stopwatch.GetElapsedTime(t0).TotalNanoseconds / 100);
                }
        fixed (float* px = x)
            foreach (int k in new[] { 576, 1536 })
            {
                double b = double.MaxValue;
                for (int r = 0; r < rounds; r++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    for (int j = 0; j < 100; j++) Int8Activation.Quantize(px, k);
                    b = Math.Min(b, Stopwatch.GetElapsedTime(t0).TotalNanoseconds / 100);
                }
                Console.WriteLine($"Int8Activation.Quantize({k}): {b:F0} ns");
            }
        for (int i = 0; i < mats.Count; i++)
        {
            var m = mats[i].Matrix;
            Console.WriteLine($"{mats[i].Shape,-10} {best[i] / 1000:F2} µs  {best[i] / (m.Rows * (m.Cols / 128.0)):F3} ns per row·128  {best[i] / m.Rows:F2} ns per row");
        }
    }
}

/// <summary>
/// Whether the kernel's compute scales over the cores: 1 and then 2 threads, each on its own L2-resident 576×1536 INT4
/// matrix (no hand-off, no shared data), aggregate ns per row·128 columns. Usage: ... -- hot-scaling
/// </summary>
internal static unsafe class HotScaling
{
    public static void Run()
    {
        var rng = new Random(5);
        var m = new[] { Int8ShapeProbe.RandomInt4(rng, 576, 1536), Int8ShapeProbe.RandomInt4(rng, 576, 1536) };
        for (int rep = 0; rep < 6; rep++)
            foreach (int threads in new[] { 1, 2 })
            {
                var el = new double[threads];
                using var barrier = new Barrier(threads);
                var ts = new Thread[threads];
                for (int t = 0; t < threads; t++)
                {
                    int tt = t;
                    ts[t] = new Thread(() =>
                    {
                        var x = new float[1536]; for (int i = 0; i < x.Length; i++) x[i] = MathF.Sin(i);
                        var y = new float[576];
                        fixed (float* px = x, py = y)
                        {
                            var a = Int8Activation.Quantize(px, 1536);
                            for (int k = 0; k < 200; k++) Int8DotGemv.Rows(m[tt], a, py, 0, 576);
                            barrier.SignalAndWait();
                            long t0 = Stopwatch.GetTimestamp();
                            for (int k = 0; k < 2000; k++) Int8DotGemv.Rows(m[tt], a, py, 0, 576);
                            el[tt] = Stopwatch.GetElapsedTime(t0).TotalNanoseconds;
                        }
                    });
                    ts[t].Start();
                }
                foreach (var th in ts) th.Join();
                double rowChunks = 2000.0 * m[0].Rows * (m[0].Cols / 128) * threads;
                Console.Write($"{threads}T: {el.Max() / rowChunks:F3} ns per row·128 aggregate ({rowChunks * 64 / el.Max():F1} GB/s)   ");
                if (threads == 2) Console.WriteLine();
            }
    }
}

/// <summary>
/// The kernel streaming from DRAM against a plain read of the same bytes: 1 and then 2 threads, each running
/// single-threaded decode GEMVs (int8 activations, no hand-off) over its own 30 layers of SmolLM2-135M-shaped INT4
/// gate/up/down (~42 MB, beyond L3), or summing an array of that size (TensorPrimitives.Sum); best of 20 passes,
/// aggregate GB/s. Usage: ... -- dram-scaling
/// </summary>
internal static unsafe class DramScaling
{
    public static void Run()
    {
        const int Layers = 30, D = 576, Ff = 1536;
        var rng = new Random(5);
        var sets = new QuantizedMatrix[2][];
        for (int s = 0; s < 2; s++)
        {
            sets[s] = new QuantizedMatrix[3 * Layers];
            for (int l = 0; l < Layers; l++)
            {
                sets[s][3 * l] = Int8ShapeProbe.RandomInt4(rng, Ff, D);
                sets[s][3 * l + 1] = Int8ShapeProbe.RandomInt4(rng, Ff, D);
                sets[s][3 * l + 2] = Int8ShapeProbe.RandomInt4(rng, D, Ff);
            }
        }
        long bytes = 0;
        foreach (var w in sets[0]) bytes += w.MemoryBytes;
        var arrays = new[] { new float[bytes / sizeof(float)], new float[bytes / sizeof(float)] };
        foreach (var a in arrays) a.AsSpan().Fill(1f);
        void Gemvs(int s)
        {
            var x = new float[Ff];
            for (int i = 0; i < Ff; i++) x[i] = MathF.Sin(i);
            var y = new float[Ff];
            fixed (float* px = x, py = y)
                foreach (var w in sets[s]) QuantizedGemv.Run(w, px, 1, py, parallel: false, int8Activations: true);
        }
        void Sum(int s) => System.Numerics.Tensors.TensorPrimitives.Sum(arrays[s]);
        Console.WriteLine($"{bytes / 1e6:F1} MB per thread");
        for (int rep = 0; rep < 3; rep++)
            foreach (var (name, pass) in new (string, Action<int>)[] { ("int8 GEMVs", Gemvs), ("plain sum", Sum) })
            {
                Console.Write($"{name,-10}");
                foreach (int threads in new[] { 1, 2 })
                    Console.Write($"  {threads}T {threads * bytes / BestSeconds(threads, pass) / 1e9,5:F1} GB/s");
                Console.WriteLine();
            }
    }

    // Best of 20: the slowest thread's time when `threads` threads start together, each on its own data.
    private static double BestSeconds(int threads, Action<int> pass)
    {
        double best = double.MaxValue;
        for (int k = 0; k < 20; k++)
        {
            using var barrier = new Barrier(threads);
            var elapsed = new double[threads];
            var workers = new Thread[threads];
            for (int t = 0; t < threads; t++)
            {
                int index = t;
                workers[t] = new Thread(() =>
                {
                    barrier.SignalAndWait();
                    long t0 = Stopwatch.GetTimestamp();
                    pass(index);
                    elapsed[index] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                });
                workers[t].Start();
            }
            foreach (var worker in workers) worker.Join();
            best = Math.Min(best, elapsed.Max());
        }
        return best;
    }
}

/// <summary>
/// The INT8 LM head's decode GEMV (49152 × 576, asymmetric INT8 g128, as `quantize --lm-head int8` writes it) with FP32
/// activations (<see cref="Int8WeightGemv"/>) against int16 activations (<see cref="Int16DotGemv"/>), in alternating
/// calls, hot (repeated) and from DRAM (a 64 MB sum between calls), on 1 and 2 threads: best of each.
/// Usage: ... -- int8-head [rounds]
/// </summary>
internal static class Int8HeadProbe
{
    public static void Run(int rounds)
    {
        const int Rows = 49152, Cols = 576;
        var w = KernelMatrix.TryCreate(QuantFormat.Int(8, 128).Quantize(KernelBenchmark.Random(new Random(5), (long)Rows * Cols), Rows, Cols))!;
        var x = new float[Cols];
        for (int i = 0; i < Cols; i++) x[i] = MathF.Sin(0.37f * i) * (1 + i % 7);
        var y = new float[Rows];
        var flush = new float[64 << 20 >> 2];
        Console.WriteLine($"{Rows}×{Cols} INT8 g{w.GroupSize}, {w.Codes.Length / 1e6:F1} MB of codes");
        foreach (bool cold in new[] { false, true })
            foreach (int threads in new[] { 1, 2 })
            {
                Parallelism.MaxThreads = threads;
                var best = new[] { double.MaxValue, double.MaxValue };
                for (int r = 0; r < (cold ? rounds : 4 * rounds); r++)
                    for (int v = 0; v < 2; v++)
                    {
                        if (cold) System.Numerics.Tensors.TensorPrimitives.Sum(flush);
                        long t0 = Stopwatch.GetTimestamp();
                        Gemm.MultiplyByQuantized(x, 1, w, y, parallel: true, int8Activations: v == 1);
                        best[v] = Math.Min(best[v], Stopwatch.GetElapsedTime(t0).TotalSeconds);
                    }
                Console.WriteLine($"{(cold ? "DRAM" : "hot"),-4} {threads} thread(s): FP32 activations {best[0] * 1e6,7:F0} µs ({w.Codes.Length / best[0] / 1e9,4:F1} GB/s), "
                    + $"int16 activations {best[1] * 1e6,7:F0} µs ({w.Codes.Length / best[1] / 1e9,4:F1} GB/s)");
            }
    }
}
