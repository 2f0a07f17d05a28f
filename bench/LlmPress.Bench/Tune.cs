using System.Diagnostics;
using LlmPress.Numerics;
using LlmPress.Numerics.Kernels;

internal static class Tune
{
    // Configurations are "KC,MC,NC".
    // Rotates blocking configurations, keeping each one's best result, so machine noise hits all alike.
    // Single-thread runs are timed by process CPU time, which other engineers' builds do not inflate.
    public static void Run(string[] configs, int rounds, int size, int threads)
    {
        var best = new double[configs.Length];
        var bestPerCpu = new double[configs.Length];
        var rng = new Random(1);
        var a = KernelBenchmark.Random(rng, (long)size * size);
        var b = KernelBenchmark.Random(rng, (long)size * size);
        var c = new float[(long)size * size];
        Parallelism.MaxThreads = threads;
        // LEVEL=Avx2 or Scalar measures a lower kernel tier (the override is per thread; GEMM reads it on the caller).
        if (Enum.TryParse<KernelLevel>(Environment.GetEnvironmentVariable("LEVEL"), out var level)) KernelDispatch.Override = level;
        var proc = Process.GetCurrentProcess();
        for (int r = 0; r < rounds; r++)
        {
            for (int i = 0; i < configs.Length; i++)
            {
                var p = configs[i].Split(',').Select(int.Parse).ToArray();
                GemmDriver.KC = p[0]; GemmDriver.MC = p[1]; GemmDriver.NC = p[2];
                for (int rep = 0; rep < 3; rep++)
                {
                    proc.Refresh();
                    var cpu0 = proc.TotalProcessorTime;
                    long t0 = Stopwatch.GetTimestamp();
                    Gemm.Sgemm(false, false, size, size, size, 1f, a, size, b, size, 0f, c, size, threads > 1);
                    double wall = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                    proc.Refresh();
                    double cpu = (proc.TotalProcessorTime - cpu0).TotalSeconds;
                    double secs = threads == 1 ? cpu : wall;
                    best[i] = Math.Max(best[i], 2.0 * size * size * size / secs / 1e9);
                    bestPerCpu[i] = Math.Max(bestPerCpu[i], 2.0 * size * size * size / cpu / 1e9);
                }
            }
        }
        for (int i = 0; i < configs.Length; i++) Console.WriteLine($"{configs[i],-20} {best[i]:F1}   per CPU-second {bestPerCpu[i]:F1}");
    }
}
