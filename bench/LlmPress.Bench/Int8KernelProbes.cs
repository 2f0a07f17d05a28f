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
    public static void Run(string[] shapes, int rounds)
    {
        var rng = new Random(5);
        var mats = new List<(string Shape, QuantizedMatrix Matrix)>();
        foreach (var s in shapes)
        {
            var p = s.Split('x'); int rows = int.Parse(p[0]), cols = int.Parse(p[1]);
            var w = new float[rows * cols]; for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() - 0.5);
            mats.Add((s, KernelMatrix.TryCreate(QuantFormat.Int(4, 128).Quantize(w, rows, cols))!));
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
        QuantizedMatrix Make() { var w = new float[576 * 1536]; for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() - 0.5); return KernelMatrix.TryCreate(QuantFormat.Int(4, 128).Quantize(w, 576, 1536))!; }
        var m = new[] { Make(), Make() };
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
                double rowChunks = 2000.0 * 576 * 12 * threads;
                Console.Write($"{threads}T: {el.Max() / rowChunks:F3} ns per row·128 aggregate ({rowChunks * 64 / el.Max():F1} GB/s)   ");
                if (threads == 2) Console.WriteLine();
            }
    }
}
