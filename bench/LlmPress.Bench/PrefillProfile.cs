using System.Diagnostics;
using LlmPress.Evaluation;
using LlmPress.Models;
using LlmPress.Numerics;

namespace LlmPress.Bench;

/// <summary>
/// Where a prefill window's time goes: the six DecoderLayer stages (summed over all layers), the final norm and the
/// LM head with log-likelihood, for a random BF16 model of the SmolLM2-135M shape. Best of several windows per stage.
/// Usage: ... -- prefill-profile [window] [repeats]
/// </summary>
internal static class PrefillProfile
{
    public static void Run(int window, int repeats)
    {
        var config = RandomModel.SmolLM2Shape;
        var model = RandomModel.Create(config, DType.BF16);
        var rng = new Random(7);
        var tokens = new int[window];
        for (int i = 0; i < tokens.Length; i++) tokens[i] = rng.Next(config.VocabSize);
        var scratch = new ForwardScratch(config);
        scratch.EnsureCapacity(window);
        string[] names = ["norm1", "qkv+rope+attn", "o_proj", "norm2", "gate/up+silu", "down"];
        var best = new double[names.Length];
        Array.Fill(best, double.MaxValue);
        double bestTotal = double.MaxValue;
        for (int r = 0; r <= repeats; r++)
        {
            var sums = new double[names.Length];
            model.Embed(tokens, scratch.Hidden.AsSpan(0, window * config.HiddenSize));
            var total = Stopwatch.StartNew();
            foreach (var layer in model.Layers)
            {
                long t0 = Stopwatch.GetTimestamp();
                layer.NormalizeAttentionInput(window, scratch);
                long t1 = Stopwatch.GetTimestamp();
                layer.Attend(window, 0, scratch);
                long t2 = Stopwatch.GetTimestamp();
                layer.ProjectAttentionOutput(window, scratch);
                long t3 = Stopwatch.GetTimestamp();
                layer.NormalizeMlpInput(window, scratch);
                long t4 = Stopwatch.GetTimestamp();
                layer.ActivateMlp(window, scratch);
                long t5 = Stopwatch.GetTimestamp();
                layer.ProjectMlpOutput(window, scratch);
                long t6 = Stopwatch.GetTimestamp();
                long[] t = [t0, t1, t2, t3, t4, t5, t6];
                for (int i = 0; i < names.Length; i++) sums[i] += (t[i + 1] - t[i]) / (double)Stopwatch.Frequency;
            }
            double layersSeconds = total.Elapsed.TotalSeconds;
            if (r == 0) continue;
            for (int i = 0; i < names.Length; i++) best[i] = Math.Min(best[i], sums[i]);
            bestTotal = Math.Min(bestTotal, layersSeconds);
        }
        for (int i = 0; i < names.Length; i++) Console.WriteLine($"{names[i],-16} {best[i] * 1e3,8:F1} ms");
        Console.WriteLine($"{"layers total",-16} {bestTotal * 1e3,8:F1} ms");

        // Attention kernel alone (one layer's q/k/v are in scratch from the last layer run).
        double attn = double.MaxValue;
        for (int r = 0; r < 4; r++)
        {
            var sw = Stopwatch.StartNew();
            CausalAttention.Forward(scratch.Query, scratch.Key, scratch.Value, window, 0, config.HeadCount, config.KvHeadCount,
                config.HeadDim, null, scratch.Attention);
            attn = Math.Min(attn, sw.Elapsed.TotalSeconds);
        }
        Console.WriteLine($"{"attention x30",-16} {attn * 30e3,8:F1} ms  ({attn * 1e3:F2} ms/layer)");

        var l0 = model.Layers[0];
        var normed = scratch.Normed.AsSpan(0, window * config.HiddenSize).ToArray();
        foreach (var (name, linear, output) in new[] { ("q_proj", l0.QueryProj, scratch.Query), ("k_proj", l0.KeyProj, scratch.Key),
            ("v_proj", l0.ValueProj, scratch.Value), ("gate_proj", l0.GateProj, scratch.Gate) })
        {
            double b = double.MaxValue;
            for (int r = 0; r < 5; r++)
            {
                var sw = Stopwatch.StartNew();
                linear.Forward(normed, window, output);
                b = Math.Min(b, sw.Elapsed.TotalSeconds);
            }
            double flops = 2.0 * window * linear.InFeatures * linear.OutFeatures;
            Console.WriteLine($"{name + " x30",-16} {b * 30e3,8:F1} ms  ({flops / b / 1e9:F0} GFLOP/s)");
        }
        var rope = new RotaryEmbedding(config.HeadDim, config.RopeTheta, config.RopeScaling);
        double ropeBest = double.MaxValue;
        for (int r = 0; r < 5; r++)
        {
            var sw = Stopwatch.StartNew();
            rope.Apply(scratch.Query.AsSpan(0, window * config.QueryDim), window, config.HeadCount, 0);
            rope.Apply(scratch.Key.AsSpan(0, window * config.KvDim), window, config.KvHeadCount, 0);
            ropeBest = Math.Min(ropeBest, sw.Elapsed.TotalSeconds);
        }
        Console.WriteLine($"{"rope q+k x30",-16} {ropeBest * 30e3,8:F1} ms");

        var scorer = new WindowScorer(model);
        double scoreBest = double.MaxValue;
        for (int r = 0; r <= repeats; r++)
        {
            var sw = Stopwatch.StartNew();
            scorer.ScoreWindow(tokens, 0);
            if (r > 0) scoreBest = Math.Min(scoreBest, sw.Elapsed.TotalSeconds);
        }
        Console.WriteLine($"{"whole window",-16} {scoreBest * 1e3,8:F1} ms  → {window / scoreBest:F0} tokens/s (LM head+NLL ≈ {(scoreBest - bestTotal) * 1e3:F0} ms)");
    }
}
