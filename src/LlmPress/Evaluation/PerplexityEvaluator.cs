using System.Diagnostics;
using System.Numerics.Tensors;
using LlmPress.Models;

namespace LlmPress.Evaluation;

/// <summary>
/// Perplexity over non-overlapping windows of a token stream (the remainder that does not fill a window is
/// dropped), as in the GPTQ paper's WikiText-2 protocol or llama.cpp's llama-perplexity.
/// </summary>
public static class PerplexityEvaluator
{
    /// <summary>Rows of logits computed at once: bounds memory to rows × vocab floats (49k vocab: 25 MB).</summary>
    private const int LogitRows = 128;

    /// <param name="model">The model.</param>
    /// <param name="tokens">The whole tokenized text (BOS once at the start, if the model has one).</param>
    /// <param name="sequenceLength">Window length N.</param>
    /// <param name="maxWindows">Evaluate at most this many windows (null: all).</param>
    /// <param name="protocol">Which predictions count.</param>
    /// <param name="progress">Called after each window with (done, total).</param>
    /// <exception cref="ArgumentException">Fewer tokens than one window.</exception>
    public static PerplexityResult Evaluate(LlamaModel model, ReadOnlySpan<int> tokens, int sequenceLength, int? maxWindows = null,
        PerplexityProtocol protocol = PerplexityProtocol.Gptq, Action<int, int>? progress = null)
    {
        if (sequenceLength < 2) throw new ArgumentOutOfRangeException(nameof(sequenceLength), sequenceLength, "A window needs at least 2 tokens.");
        int windows = tokens.Length / sequenceLength;
        if (windows == 0)
            throw new ArgumentException($"The text yields {tokens.Length} tokens, fewer than one window of {sequenceLength}; use a longer text or a smaller --seq-len.");
        if (maxWindows is { } cap) windows = Math.Min(windows, Math.Max(1, cap));

        int vocab = model.Config.VocabSize, d = model.Config.HiddenSize;
        int firstScored = protocol == PerplexityProtocol.LlamaCpp ? sequenceLength / 2 : 0;
        var scratch = new ForwardScratch(model.Config);
        var logits = new float[LogitRows * vocab];
        double nllSum = 0;
        long scored = 0;
        var clock = Stopwatch.StartNew();
        for (int w = 0; w < windows; w++)
        {
            var window = tokens.Slice(w * sequenceLength, sequenceLength);
            var normed = model.ForwardHidden(window, scratch);
            // Row t's logits predict token t + 1.
            for (int t0 = firstScored; t0 < sequenceLength - 1; t0 += LogitRows)
            {
                int rows = Math.Min(LogitRows, sequenceLength - 1 - t0);
                model.ComputeLogits(normed.Slice(t0 * d, rows * d), rows, logits);
                for (int r = 0; r < rows; r++)
                    nllSum += NegativeLogLikelihood(logits.AsSpan(r * vocab, vocab), window[t0 + r + 1]);
                scored += rows;
            }
            progress?.Invoke(w + 1, windows);
        }
        clock.Stop();
        double meanNll = nllSum / scored;
        return new PerplexityResult(Math.Exp(meanNll), meanNll, windows, scored, (long)windows * sequenceLength, clock.Elapsed.TotalSeconds);
    }

    /// <summary>−log softmax(logits)[target] = logsumexp(logits) − logits[target].</summary>
    public static double NegativeLogLikelihood(ReadOnlySpan<float> logits, int target)
        => LogSumExp(logits) - logits[target];

    /// <summary>log Σ exp(x), stable: max + log Σ exp(x − max).</summary>
    public static double LogSumExp(ReadOnlySpan<float> x)
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
