using System.Diagnostics;

namespace LlmPress.Numerics;

/// <summary>
/// Self-timed throughput measurements of the numeric kernels, for the CLI's <c>bench</c> verb and the bench project.
/// Each call warms up once, then repeats until <c>minTime</c> has passed (at least 3 runs) and reports the best run,
/// which is the least disturbed by other processes. Threads are capped through <see cref="Parallelism.MaxThreads"/>
/// for the duration and restored afterwards (so do not run two measurements at once).
/// </summary>
public static class KernelBenchmark
{
    /// <summary>GFLOP/s (2·n³ flops) of an n×n×n <see cref="Gemm.Sgemm"/> with no transposes.</summary>
    public static double MeasureSgemmGflops(int n, int threads, TimeSpan minTime)
        => MeasureSgemmGflops(n, n, n, transposeA: false, transposeB: false, threads, minTime);

    /// <summary>GFLOP/s (2·m·n·k flops) of <see cref="Gemm.Sgemm"/> on random data; threads = 1 uses parallel: false.</summary>
    public static double MeasureSgemmGflops(int m, int n, int k, bool transposeA, bool transposeB, int threads, TimeSpan minTime)
    {
        var rng = new Random(1);
        var a = Random(rng, (long)m * k);
        var b = Random(rng, (long)k * n);
        var c = new float[(long)m * n];
        int lda = transposeA ? m : k, ldb = transposeB ? k : n;
        double seconds = Best(threads, minTime, () => Gemm.Sgemm(transposeA, transposeB, m, n, k, 1f, a, lda, b, ldb, 0f, c, n, threads > 1));
        return 2.0 * m * n * k / seconds / 1e9;
    }

    /// <summary>GFLOP/s (2·m·n·k) of <see cref="Gemm.MultiplyByWeight"/> with a [n, k] weight of <paramref name="type"/>.</summary>
    public static double MeasureMultiplyByWeightGflops(int m, int n, int k, DType type, int threads, TimeSpan minTime)
    {
        var (seconds, _) = MeasureMultiplyByWeight(m, n, k, type, threads, minTime);
        return 2.0 * m * n * k / seconds / 1e9;
    }

    /// <summary>
    /// Weight bytes streamed per second (GB/s) by <see cref="Gemm.MultiplyByWeight"/>; meant for decode (m = 1).
    /// <paramref name="fromMemory"/>: before each timed call a 256 MiB array is read (untimed), so the weight comes from
    /// DRAM as in a decode step, whose other layers evict it. Without it, repeated calls find part of a weight bigger than
    /// the last-level cache still cached (a 56 MB LM head read 40–53 GB/s on this 32 MiB-L3 machine, whose DRAM streams ~30).
    /// </summary>
    public static double MeasureMultiplyByWeightGBps(int m, int n, int k, DType type, int threads, TimeSpan minTime, bool fromMemory = false)
    {
        var (seconds, bytes) = MeasureMultiplyByWeight(m, n, k, type, threads, minTime, fromMemory);
        return bytes / seconds / 1e9;
    }

    private static (double Seconds, long Bytes) MeasureMultiplyByWeight(int m, int n, int k, DType type, int threads, TimeSpan minTime,
        bool fromMemory = false)
    {
        var rng = new Random(2);
        var a = Random(rng, (long)m * k);
        var wf = Random(rng, (long)n * k);
        int size = DTypeInfo.SizeOf(type);
        var bytes = new byte[(long)n * k * size];
        for (long i = 0; i < wf.Length; i++)
        {
            switch (type)
            {
                case DType.F32: BitConverter.TryWriteBytes(bytes.AsSpan((int)(i * 4)), wf[i]); break;
                case DType.F16: BitConverter.TryWriteBytes(bytes.AsSpan((int)(i * 2)), (Half)wf[i]); break;
                default: BitConverter.TryWriteBytes(bytes.AsSpan((int)(i * 2)), FloatConversion.SingleToBFloat16(wf[i])); break;
            }
        }
        var w = new WeightView(type, n, k, bytes);
        var c = new float[(long)m * n];
        float[]? evict = fromMemory ? new float[(256 << 20) / sizeof(float)] : null;
        if (evict is not null) evict.AsSpan().Fill(1f);
        float sink = 0;
        double seconds = Best(threads, minTime, () => Gemm.MultiplyByWeight(a, m, w, c, accumulate: false, parallel: threads > 1),
            evict is null ? null : () => sink += System.Numerics.Tensors.TensorPrimitives.Sum(evict));
        GC.KeepAlive(sink);
        return (seconds, bytes.LongLength);
    }

    /// <summary>GFLOP/s of <see cref="SymmetricRankUpdate.Accumulate"/> (rows·cols·(cols + 1) flops: one triangle).</summary>
    public static double MeasureSymmetricRankUpdateGflops(int rows, int cols, int threads, TimeSpan minTime)
    {
        var x = Random(new Random(3), (long)rows * cols);
        var h = new float[(long)cols * cols];
        double seconds = Best(threads, minTime, () => SymmetricRankUpdate.Accumulate(x, rows, cols, 1e-3f, h, threads > 1));
        return (double)rows * cols * (cols + 1) / seconds / 1e9;
    }

    /// <summary>GFLOP/s (n³/3 flops) of the FP32 <see cref="Cholesky.TryFactor(Span{float}, int, out int, bool)"/>.</summary>
    public static double MeasureCholeskyGflops(int n, int threads, TimeSpan minTime)
    {
        var spd = RandomSpd(n);
        var work = new float[spd.Length];
        double seconds = Best(threads, minTime, () => Cholesky.TryFactor(work, n, out _, threads > 1),
            untimedSetup: () => spd.CopyTo(work, 0));
        return (double)n * n * n / 3 / seconds / 1e9;
    }

    /// <summary>Seconds for <see cref="Cholesky.UpperFactorOfInverse"/> (GPTQ's H⁻¹ factor) at size n.</summary>
    public static double MeasureUpperFactorOfInverseSeconds(int n, int threads, TimeSpan minTime)
    {
        var spd = RandomSpd(n);
        var work = new float[spd.Length];
        return Best(threads, minTime, () => Cholesky.UpperFactorOfInverse(work, n, out _, threads > 1),
            untimedSetup: () => spd.CopyTo(work, 0));
    }

    /// <summary>GB/s (read + write) of an in-place normalised <see cref="HadamardTransform.Transform"/> over [rows, n].</summary>
    /// <summary>
    /// Memory read bandwidth (GB/s): the sum of a <paramref name="bytes"/>-byte float array, split over the threads —
    /// the bound a decode step that streams every weight once is measured against.
    /// </summary>
    public static double MeasureStreamGBps(long bytes, int threads, TimeSpan minTime)
    {
        var x = new float[bytes / sizeof(float)];
        x.AsSpan().Fill(1f);
        int chunks = Math.Max(1, threads) * 8;
        var partial = new float[chunks];
        double seconds = Best(threads, minTime, () => Parallel.For(0, chunks, Parallelism.Options, i =>
        {
            long start = x.LongLength * i / chunks, end = x.LongLength * (i + 1) / chunks;
            partial[i] = System.Numerics.Tensors.TensorPrimitives.Sum(x.AsSpan((int)start, (int)(end - start)));
        }));
        return (double)x.LongLength * sizeof(float) / seconds / 1e9;
    }

    public static double MeasureHadamardGBps(int rows, int n, int threads, TimeSpan minTime)
    {
        var x = Random(new Random(4), (long)rows * n);
        double seconds = Best(threads, minTime, () => HadamardTransform.Transform(x, n, normalize: true));
        return 8.0 * rows * n / seconds / 1e9;
    }

    /// <summary>A well-conditioned SPD matrix XᵀX/rows + I/10 ([n, n]).</summary>
    internal static float[] RandomSpd(int n)
    {
        int rows = n + 16;
        var x = Random(new Random(5), (long)rows * n);
        var h = new float[(long)n * n];
        SymmetricRankUpdate.Accumulate(x, rows, n, 1f / rows, h);
        for (int i = 0; i < n; i++) h[(long)i * n + i] += 0.1f;
        return h;
    }

    internal static float[] Random(Random rng, long count)
    {
        var x = new float[count];
        for (long i = 0; i < count; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    /// <summary>Best wall time in seconds of <paramref name="body"/> with the thread cap set to <paramref name="threads"/>.</summary>
    internal static double Best(int threads, TimeSpan minTime, Action body, Action? untimedSetup = null)
    {
        int saved = Parallelism.MaxThreads;
        Parallelism.MaxThreads = Math.Max(1, threads);
        try
        {
            untimedSetup?.Invoke();
            body();
            double best = double.MaxValue;
            var total = Stopwatch.StartNew();
            for (int run = 0; run < 3 || total.Elapsed < minTime; run++)
            {
                untimedSetup?.Invoke();
                long start = Stopwatch.GetTimestamp();
                body();
                best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
            }
            return best;
        }
        finally
        {
            Parallelism.MaxThreads = saved;
        }
    }
}
