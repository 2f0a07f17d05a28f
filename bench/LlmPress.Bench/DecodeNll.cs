using LlmPress.Models;
using LlmPress.Tokenization;

namespace LlmPress.Bench;

/// <summary>
/// Teacher-forced decode of a real model and text, one token at a time through the KV cache, with the int8 decode
/// activations and with exact FP32 ones in lockstep: perplexity of each, KL(exact ‖ int8) of the next-token
/// distributions (mean, max) and top-1 agreement. Measures what int8 decode activations cost in accuracy; with
/// <c>bf16-kv</c>, what a BF16 KV cache costs instead (both exact activations, the second cache BF16).
/// </summary>
internal static class DecodeNll
{
    public static void Run(string modelDir, string textFile, int tokens, int window, string compare = "int8")
    {
        bool bf16Cache = compare == "bf16-kv";
        string other = bf16Cache ? "bf16-kv" : "int8";
        using var model = LlamaModel.Load(modelDir);
        var tokenizer = Tokenizer.Load(Path.Combine(modelDir, "tokenizer.json"));
        string text = File.ReadAllText(textFile);
        var ids = tokenizer.Encode(text[..Math.Min(text.Length, tokens * 20)], addSpecialTokens: true);
        int n = Math.Min(tokens, ids.Length);
        var config = model.Config;
        KvCache Cache(int s) => new(config, window, s == 1 && bf16Cache ? Numerics.DType.BF16 : Numerics.DType.F32);
        var caches = new[] { Cache(0), Cache(1) };
        var scratches = new[] { new ForwardScratch(config), new ForwardScratch(config) };
        var logits = new[] { new float[config.VocabSize], new float[config.VocabSize] };
        double[] nll = new double[2];
        double klSum = 0, klMax = 0;
        int agree = 0, scored = 0;
        for (int start = 0; start + 1 < n; start += window)
        {
            int length = Math.Min(window, n - start);
            for (int s = 0; s < 2; s++) caches[s] = Cache(s);
            for (int i = 0; i + 1 < length; i++)
            {
                int[] step = [ids[start + i]];
                for (int s = 0; s < 2; s++)
                {
                    DecodeActivations.Override = s == 1 && !bf16Cache; // 0: exact, 1: int8 (or exact with a BF16 cache)
                    model.ComputeLogits(model.ForwardHidden(step, scratches[s], caches[s]), 1, logits[s]);
                }
                DecodeActivations.Override = null;
                var p = LogSoftmax(logits[0]);
                var q = LogSoftmax(logits[1]);
                int next = ids[start + i + 1];
                nll[0] -= p[next];
                nll[1] -= q[next];
                double kl = 0;
                for (int v = 0; v < p.Length; v++) kl += Math.Exp(p[v]) * (p[v] - q[v]);
                klSum += kl;
                klMax = Math.Max(klMax, kl);
                if (ArgMax(p) == ArgMax(q)) agree++;
                scored++;
            }
        }
        Console.WriteLine($"{modelDir}: {scored} decode steps (windows of {window})");
        Console.WriteLine($"  perplexity exact {Math.Exp(nll[0] / scored):F6}  {other} {Math.Exp(nll[1] / scored):F6}");
        Console.WriteLine($"  KL(exact || {other}) mean {klSum / scored:E3} max {klMax:E3}; top-1 agreement {100.0 * agree / scored:F2}%");
    }

    private static double[] LogSoftmax(float[] logits)
    {
        double max = double.MinValue;
        foreach (float v in logits) max = Math.Max(max, v);
        double sum = 0;
        foreach (float v in logits) sum += Math.Exp(v - max);
        double log = max + Math.Log(sum);
        var result = new double[logits.Length];
        for (int i = 0; i < logits.Length; i++) result[i] = logits[i] - log;
        return result;
    }

    private static int ArgMax(double[] v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++)
            if (v[i] > v[best]) best = i;
        return best;
    }
}
