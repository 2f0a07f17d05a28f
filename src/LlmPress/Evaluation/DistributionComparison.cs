using System.Buffers;
using System.Diagnostics;
using System.Numerics.Tensors;
using LlmPress.Models;
using LlmPress.Numerics;

namespace LlmPress.Evaluation;

/// <summary>
/// Compares a model's next-token distributions with a base model's on the same windows (llama-perplexity's
/// KL-divergence mode): KL(p_base ‖ p_model) per position, top-1 agreement, and both perplexities. Perplexity alone
/// is too coarse to rank close quantizations; KL sees every token's probability.
/// </summary>
public static class DistributionComparison
{
    /// <summary>Positions whose full logits are held at once: rows × vocab floats per model (64 × 49k = 12.6 MB).</summary>
    private const int RowChunk = 64;

    /// <param name="model">The model under test.</param>
    /// <param name="baseModel">The reference (uncompressed) model; same vocabulary.</param>
    /// <param name="tokens">The tokenized text.</param>
    /// <param name="sequenceLength">Window length.</param>
    /// <param name="maxWindows">At most this many windows.</param>
    /// <param name="protocol">Which positions are scored (as in <see cref="PerplexityEvaluator"/>).</param>
    /// <param name="progress">Called after each window with (done, total).</param>
    public static ComparisonResult Evaluate(LlamaModel model, LlamaModel baseModel, ReadOnlySpan<int> tokens, int sequenceLength,
        int? maxWindows = null, PerplexityProtocol protocol = PerplexityProtocol.Gptq, Action<int, int>? progress = null)
    {
        if (model.Config.VocabSize != baseModel.Config.VocabSize)
            throw new ArgumentException($"The models have different vocabularies ({model.Config.VocabSize} vs {baseModel.Config.VocabSize} tokens); KL divergence needs the same one.");
        int windows = PerplexityEvaluator.CountWindows(tokens.Length, sequenceLength, maxWindows);
        int vocab = model.Config.VocabSize;
        int firstScored = PerplexityEvaluator.FirstScoredRow(protocol, sequenceLength);
        var scratch = new ForwardScratch(model.Config);
        var baseScratch = new ForwardScratch(baseModel.Config);
        var logits = new float[RowChunk * vocab];
        var baseLogits = new float[RowChunk * vocab];
        var rowStats = new RowStats[RowChunk];
        double nll = 0, baseNll = 0, klSum = 0, klMax = 0;
        long agree = 0, scored = 0;
        double modelSeconds = 0, baseSeconds = 0;
        for (int w = 0; w < windows; w++)
        {
            var window = tokens.Slice(w * sequenceLength, sequenceLength);
            var clock = Stopwatch.StartNew();
            var normed = model.ForwardHidden(window, scratch);
            modelSeconds += clock.Elapsed.TotalSeconds;
            clock.Restart();
            var baseNormed = baseModel.ForwardHidden(window, baseScratch);
            baseSeconds += clock.Elapsed.TotalSeconds;
            for (int t0 = firstScored; t0 < sequenceLength - 1; t0 += RowChunk)
            {
                int rows = Math.Min(RowChunk, sequenceLength - 1 - t0);
                clock.Restart();
                model.ComputeLogits(normed.Slice(t0 * model.Config.HiddenSize, rows * model.Config.HiddenSize), rows, logits);
                modelSeconds += clock.Elapsed.TotalSeconds;
                clock.Restart();
                baseModel.ComputeLogits(baseNormed.Slice(t0 * baseModel.Config.HiddenSize, rows * baseModel.Config.HiddenSize), rows, baseLogits);
                baseSeconds += clock.Elapsed.TotalSeconds;
                CompareRows(logits, baseLogits, vocab, window.Slice(t0 + 1, rows).ToArray(), rows, rowStats);
                // Summed in row order, so the totals do not depend on how rows were split across threads.
                for (int r = 0; r < rows; r++)
                {
                    nll += rowStats[r].Nll;
                    baseNll += rowStats[r].BaseNll;
                    klSum += rowStats[r].Kl;
                    klMax = Math.Max(klMax, rowStats[r].Kl);
                    if (rowStats[r].SameTop1) agree++;
                }
                scored += rows;
            }
            progress?.Invoke(w + 1, windows);
        }
        long processed = (long)windows * sequenceLength;
        var modelResult = new PerplexityResult(Math.Exp(nll / scored), nll / scored, windows, scored, processed, modelSeconds);
        var baseResult = new PerplexityResult(Math.Exp(baseNll / scored), baseNll / scored, windows, scored, processed, baseSeconds);
        return new ComparisonResult(modelResult, baseResult, klSum / scored, klMax, (double)agree / scored);
    }

    private struct RowStats
    {
        public double Nll, BaseNll, Kl;
        public bool SameTop1;
    }

    /// <summary>Per row: both NLLs, KL(p_base ‖ p_model) = Σ p_base · (log p_base − log p_model), and top-1 agreement.</summary>
    private static void CompareRows(float[] logits, float[] baseLogits, int vocab, int[] targets, int rows, RowStats[] stats)
    {
        void Row(int r)
        {
            var q = logits.AsSpan(r * vocab, vocab);
            var p = baseLogits.AsSpan(r * vocab, vocab);
            double lseQ = LogSumExp(q), lseP = LogSumExp(p);
            int target = targets[r];
            float[] buffer = ArrayPool<float>.Shared.Rent(2 * vocab);
            try
            {
                var prob = buffer.AsSpan(0, vocab);
                var diff = buffer.AsSpan(vocab, vocab);
                // log p − log q = (p_logit − q_logit) − (lseP − lseQ)
                TensorPrimitives.Subtract(p, q, diff);
                TensorPrimitives.Subtract(diff, (float)(lseP - lseQ), diff);
                TensorPrimitives.Subtract(p, (float)lseP, prob);
                TensorPrimitives.Exp(prob, prob);
                double kl = TensorPrimitives.Dot(prob, diff);
                stats[r] = new RowStats
                {
                    Nll = lseQ - q[target],
                    BaseNll = lseP - p[target],
                    Kl = Math.Max(0, kl), // rounding can leave a tiny negative value for identical distributions
                    SameTop1 = TensorPrimitives.IndexOfMax(q) == TensorPrimitives.IndexOfMax(p),
                };
            }
            finally
            {
                ArrayPool<float>.Shared.Return(buffer);
            }
        }
        if (Parallelism.MaxThreads == 1 || rows < 4)
            for (int r = 0; r < rows; r++) Row(r);
        else
            Parallel.For(0, rows, Parallelism.Options, Row);
    }

    /// <summary>log Σ exp(x), computed as max + log Σ exp(x − max).</summary>
    private static double LogSumExp(ReadOnlySpan<float> x)
    {
        float max = TensorPrimitives.Max(x);
        const int Chunk = 1024;
        Span<float> buffer = stackalloc float[Chunk];
        double sum = 0;
        for (int i = 0; i < x.Length; i += Chunk)
        {
            var part = x.Slice(i, Math.Min(Chunk, x.Length - i));
            var b = buffer[..part.Length];
            TensorPrimitives.Subtract(part, max, b);
            TensorPrimitives.Exp(b, b);
            sum += TensorPrimitives.Sum(b);
        }
        return max + Math.Log(sum);
    }
}
