using System.Diagnostics;
using LlmPress.Gguf;
using LlmPress.Numerics;

namespace LlmPress.Bench;

/// <summary>
/// `bench gguf [rows] [cols] [threads]`: throughput of the ggml codecs (encode = llama.cpp's reference quantizers,
/// decode = dequantize_row_*) on one random [rows, cols] matrix, best of 3 runs, in millions of weights per second.
/// </summary>
internal static class GgufCodecBench
{
    public static void Run(int rows, int cols, int threads)
    {
        Parallelism.MaxThreads = threads;
        var rng = new Random(1);
        var x = new float[(long)rows * cols];
        for (long i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var y = new float[x.Length];
        foreach (var type in new[] { GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.MXFP4 })
        {
            byte[] data = GgmlCodec.Encode(type, x, rows, cols);
            double encode = Best(() => GgmlCodec.Encode(type, x, rows, cols));
            double decode = Best(() => GgmlCodec.Decode(type, data, rows, cols, y));
            Console.WriteLine($"{GgmlTypeInfo.Name(type),-6} [{rows}, {cols}] {threads}T: encode {x.Length / encode / 1e6,8:F1} M weights/s, decode {x.Length / decode / 1e6,8:F1} M weights/s");
        }
    }

    private static double Best(Action action)
    {
        double best = double.MaxValue;
        for (int i = 0; i < 3; i++)
        {
            var sw = Stopwatch.StartNew();
            action();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return best;
    }
}
