using System.Diagnostics;
using LlmPress.Models;

namespace LlmPress.Evaluation;

/// <summary>End-to-end model throughput, measured the way eval and generate run.</summary>
public static class SpeedBenchmark
{
    /// <summary>
    /// Prefill tokens/s for one window of <paramref name="windowLength"/> random tokens: all layers plus the LM head and
    /// log-likelihood for every position (what perplexity evaluation does). Best of <paramref name="repeats"/> after one warm-up.
    /// </summary>
    public static double MeasurePrefill(LlamaModel model, int windowLength, int repeats = 2, bool withLogits = true)
    {
        var rng = new Random(7);
        var tokens = new int[windowLength];
        for (int i = 0; i < tokens.Length; i++) tokens[i] = rng.Next(model.Config.VocabSize);
        var scorer = new WindowScorer(model);
        var scratch = new ForwardScratch(model.Config);
        double best = double.MaxValue;
        for (int r = 0; r <= repeats; r++)
        {
            var clock = Stopwatch.StartNew();
            if (withLogits) scorer.ScoreWindow(tokens, 0);
            else model.ForwardHidden(tokens, scratch);
            double s = clock.Elapsed.TotalSeconds;
            if (r > 0) best = Math.Min(best, s); // r = 0 warms up the JIT and caches
        }
        return windowLength / best;
    }

    /// <summary>
    /// Bytes a decode step of <see cref="MeasureDecode"/> has to read from memory, on average over its timed steps:
    /// every decoder linear's weight (packed codes, scales and zero points, or the stored weight), the LM head, and the
    /// keys and values cached so far in every layer (FP32). Activations, norms and the one embedding row are left out
    /// (under 0.1% here). Divided into the memory bandwidth, this is the tokens/s bound the decode is measured against.
    /// </summary>
    public static long DecodeBytesPerToken(LlamaModel model, int promptLength = 32, int steps = 32)
    {
        long bytes = model.LmHead.WeightBytes;
        foreach (var layer in model.Layers)
            foreach (var linear in layer.Linears) bytes += linear.WeightBytes;
        // Timed steps attend over promptLength + 2 … promptLength + steps positions (after the warm-up step): the mean.
        double positions = promptLength + (steps + 2) / 2.0;
        var c = model.Config;
        return bytes + (long)(2.0 * c.LayerCount * positions * c.KvDim * sizeof(float));
    }

    /// <summary>
    /// Decode tokens/s: <paramref name="steps"/> single-token steps after a <paramref name="promptLength"/>-token prefill,
    /// with the KV cache stored as <paramref name="kvCacheType"/> (F32 or BF16).
    /// </summary>
    public static double MeasureDecode(LlamaModel model, int promptLength = 32, int steps = 32, Numerics.DType kvCacheType = Numerics.DType.F32)
    {
        var cache = new KvCache(model.Config, promptLength + steps + 1, kvCacheType);
        var scratch = new ForwardScratch(model.Config);
        var logits = new float[model.Config.VocabSize];
        var prompt = new int[promptLength];
        for (int i = 0; i < promptLength; i++) prompt[i] = (i * 7919) % model.Config.VocabSize;
        model.ForwardHidden(prompt, scratch, cache);
        int[] next = [1];
        // Warm-up step (JIT), then time.
        model.ComputeLogits(model.ForwardHidden(next, scratch, cache), 1, logits);
        var clock = Stopwatch.StartNew();
        for (int s = 0; s < steps - 1; s++)
        {
            var normed = model.ForwardHidden(next, scratch, cache);
            model.ComputeLogits(normed, 1, logits);
            next[0] = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits);
        }
        return (steps - 1) / clock.Elapsed.TotalSeconds;
    }
}
