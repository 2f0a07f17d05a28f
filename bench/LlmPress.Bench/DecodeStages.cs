using System.Diagnostics;
using LlmPress.Models;
using LlmPress.Numerics;
using LlmPress.Quantization;

namespace LlmPress.Bench;

/// <summary>
/// Where a decode token's time goes, per weight form (BF16, INT4 g128, MXFP4, NVFP4) of a random SmolLM2-135M-shaped
/// model: the six DecoderLayer stages summed over the 30 layers, the final norm and the LM head, next to the time the
/// bytes each stage streams would take at the measured memory bandwidth. Median over many tokens after a 32-token prompt.
/// Usage: ... -- decode-stages [tokens] [threads]
/// </summary>
internal static class DecodeStages
{
    public static void Run(int tokens, int threads)
    {
        Parallelism.MaxThreads = threads;
        var config = RandomModel.SmolLM2Shape;
        double gbps = KernelBenchmark.MeasureStreamGBps(512 << 20, threads, TimeSpan.FromSeconds(1));
        Console.WriteLine($"stream bandwidth {gbps:F1} GB/s, {threads} threads");
        // "+h8": the same layers with an INT8 LM head (quantize --lm-head int8).
        foreach (var form in new[] { "bf16", "int4", "int4+h8", "mxfp4", "nvfp4" })
        {
            var model = RandomModel.Create(config, DType.BF16);
            if (form != "bf16")
                PackedModel.QuantizeInPlace(model, form switch
                {
                    "int4" or "int4+h8" => QuantFormat.Int(4, 128),
                    "mxfp4" => QuantFormat.Mxfp4(),
                    _ => QuantFormat.Nvfp4(),
                });
            if (form.EndsWith("+h8", StringComparison.Ordinal)) PackedModel.QuantizeHeadInPlace(model, QuantFormat.Int(8, 128));
            Profile(form, model, tokens, gbps);
        }
    }

    private static void Profile(string form, LlamaModel model, int tokens, double gbps)
    {
        var c = model.Config;
        int d = c.HiddenSize;
        string[] names = ["norm1", "qkv+rope+attn", "o_proj+res", "norm2", "gate/up+silu", "down+res", "final norm", "lm_head"];
        var samples = new double[names.Length][];
        for (int i = 0; i < names.Length; i++) samples[i] = new double[tokens];
        var totals = new double[tokens];
        var cache = new KvCache(c, 32 + tokens + 8);
        var scratch = new ForwardScratch(c);
        var prompt = new int[32];
        for (int i = 0; i < prompt.Length; i++) prompt[i] = (i * 7919) % c.VocabSize;
        model.ForwardHidden(prompt, scratch, cache);
        var logits = new float[c.VocabSize];
        int[] next = [1];
        for (int w = 0; w < 3; w++) model.ComputeLogits(model.ForwardHidden(next, scratch, cache), 1, logits); // JIT warm-up
        var t = new long[names.Length + 1];
        for (int s = 0; s < tokens; s++)
        {
            long start = Stopwatch.GetTimestamp();
            var sums = new long[names.Length];
            model.Embed(next, scratch.Hidden.AsSpan(0, d));
            int pos = cache.Length;
            foreach (var layer in model.Layers)
            {
                t[0] = Stopwatch.GetTimestamp();
                layer.NormalizeAttentionInput(1, scratch);
                t[1] = Stopwatch.GetTimestamp();
                layer.Attend(1, pos, scratch, cache);
                t[2] = Stopwatch.GetTimestamp();
                layer.ProjectAttentionOutput(1, scratch);
                t[3] = Stopwatch.GetTimestamp();
                layer.NormalizeMlpInput(1, scratch);
                t[4] = Stopwatch.GetTimestamp();
                layer.ActivateMlp(1, scratch);
                t[5] = Stopwatch.GetTimestamp();
                layer.ProjectMlpOutput(1, scratch);
                t[6] = Stopwatch.GetTimestamp();
                for (int i = 0; i < 6; i++) sums[i] += t[i + 1] - t[i];
            }
            cache.Advance(1);
            t[0] = Stopwatch.GetTimestamp();
            model.FinalNorm.Forward(scratch.Hidden.AsSpan(0, d), 1, scratch.Normed.AsSpan(0, d));
            t[1] = Stopwatch.GetTimestamp();
            model.ComputeLogits(scratch.Normed.AsSpan(0, d), 1, logits);
            t[2] = Stopwatch.GetTimestamp();
            sums[6] = t[1] - t[0];
            sums[7] = t[2] - t[1];
            next[0] = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits);
            totals[s] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            for (int i = 0; i < names.Length; i++) samples[i][s] = sums[i] * 1e3 / Stopwatch.Frequency;
        }

        long Bytes(Func<DecoderLayer, IEnumerable<LinearLayer>> pick)
        {
            long b = 0;
            foreach (var layer in model.Layers) foreach (var linear in pick(layer)) b += linear.WeightBytes;
            return b;
        }
        long kvBytes = 2L * c.LayerCount * (cache.Length) * c.KvDim * sizeof(float);
        long[] bytes =
        [
            0, Bytes(l => [l.QueryProj, l.KeyProj, l.ValueProj]) + kvBytes, Bytes(l => [l.OutputProj]), 0,
            Bytes(l => [l.GateProj, l.UpProj]), Bytes(l => [l.DownProj]), 0, model.LmHead.WeightBytes,
        ];
        Console.WriteLine($"-- {form}: median {Median(totals):F2} ms/token ({1000 / Median(totals):F1} tokens/s), "
            + $"min {Min(totals):F2}; bytes/token {(double)Sum(bytes) / 1e6:F1} MB → bound {Sum(bytes) / gbps / 1e6:F2} ms");
        for (int i = 0; i < names.Length; i++)
            Console.WriteLine($"   {names[i],-14} {Median(samples[i]),7:F3} ms  (min {Min(samples[i]):F3}; {bytes[i] / 1e6,6:F1} MB → {bytes[i] / gbps / 1e6:F3} ms at stream speed)");
    }

    private static long Sum(long[] x)
    {
        long s = 0;
        foreach (var v in x) s += v;
        return s;
    }

    private static double Min(double[] x)
    {
        double m = double.MaxValue;
        foreach (var v in x) m = Math.Min(m, v);
        return m;
    }

    private static double Median(double[] x)
    {
        var copy = (double[])x.Clone();
        Array.Sort(copy);
        return copy[copy.Length / 2];
    }
}
