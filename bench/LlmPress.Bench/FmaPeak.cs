using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LlmPress.Bench;

/// <summary>
/// The FP32 ceiling of one core: 12 independent 512-bit FMA chains, all in registers (enough to cover the FMA
/// latency on two ports). The loop sits in its own method with no calls, so the JIT keeps every accumulator in a
/// register (a loop around a Stopwatch call spills them and measures memory instead).
/// </summary>
internal static class FmaPeak
{
    public static void Run(int rounds)
    {
        if (!Avx512F.IsSupported)
        {
            Console.WriteLine("peak: AVX-512 not available on this machine");
            return;
        }
        const long Iterations = 200_000_000;
        double best = 0;
        for (int r = 0; r < rounds; r++)
        {
            var clock = Stopwatch.StartNew();
            float sink = Loop(Iterations, Vector512.Create(0.5f), Vector512.Create(0.999f));
            double gflops = Iterations * 12 * 16 * 2 / clock.Elapsed.TotalSeconds / 1e9;
            best = Math.Max(best, gflops + (sink == 42 ? 1e-9 : 0));
        }
        Console.WriteLine($"FP32 FMA peak, one thread: {best:F1} GFLOP/s (best of {rounds})");
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    private static float Loop(long iterations, Vector512<float> a, Vector512<float> b)
    {
        Vector512<float> c0 = a, c1 = a, c2 = a, c3 = a, c4 = a, c5 = a, c6 = a, c7 = a, c8 = a, c9 = a, c10 = a, c11 = a;
        for (long i = 0; i < iterations; i++)
        {
            c0 = Avx512F.FusedMultiplyAdd(c0, b, a); c1 = Avx512F.FusedMultiplyAdd(c1, b, a);
            c2 = Avx512F.FusedMultiplyAdd(c2, b, a); c3 = Avx512F.FusedMultiplyAdd(c3, b, a);
            c4 = Avx512F.FusedMultiplyAdd(c4, b, a); c5 = Avx512F.FusedMultiplyAdd(c5, b, a);
            c6 = Avx512F.FusedMultiplyAdd(c6, b, a); c7 = Avx512F.FusedMultiplyAdd(c7, b, a);
            c8 = Avx512F.FusedMultiplyAdd(c8, b, a); c9 = Avx512F.FusedMultiplyAdd(c9, b, a);
            c10 = Avx512F.FusedMultiplyAdd(c10, b, a); c11 = Avx512F.FusedMultiplyAdd(c11, b, a);
        }
        return (c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11)[0];
    }
}
