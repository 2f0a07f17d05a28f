using System.Diagnostics;
using LlmPress.Models;

namespace LlmPress.Evaluation;

/// <summary>
/// Perplexity over non-overlapping windows of a token stream (the remainder that does not fill a window is
/// dropped), as in the GPTQ paper's WikiText-2 protocol or llama.cpp's llama-perplexity.
/// </summary>
public static class PerplexityEvaluator
{
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
        int windows = CountWindows(tokens.Length, sequenceLength, maxWindows);
        int firstScored = FirstScoredRow(protocol, sequenceLength);
        var scorer = new WindowScorer(model);
        double nllSum = 0;
        long scored = 0;
        var clock = Stopwatch.StartNew();
        for (int w = 0; w < windows; w++)
        {
            nllSum += scorer.ScoreWindow(tokens.Slice(w * sequenceLength, sequenceLength), firstScored);
            scored += sequenceLength - 1 - firstScored;
            progress?.Invoke(w + 1, windows);
        }
        clock.Stop();
        double meanNll = nllSum / scored;
        return new PerplexityResult(Math.Exp(meanNll), meanNll, windows, scored, (long)windows * sequenceLength, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Full windows of <paramref name="sequenceLength"/> in the text, capped at <paramref name="maxWindows"/>.</summary>
    /// <exception cref="ArgumentException">Fewer tokens than one window.</exception>
    internal static int CountWindows(int tokenCount, int sequenceLength, int? maxWindows)
    {
        if (sequenceLength < 2) throw new ArgumentOutOfRangeException(nameof(sequenceLength), sequenceLength, "A window needs at least 2 tokens.");
        int windows = tokenCount / sequenceLength;
        if (windows == 0)
            throw new ArgumentException($"The text yields {tokenCount} tokens, fewer than one window of {sequenceLength}; use a longer text or a smaller --seq-len.");
        return maxWindows is { } cap ? Math.Min(windows, Math.Max(1, cap)) : windows;
    }

    /// <summary>The first row whose prediction is scored: 0, or the window's second half for llama.cpp's protocol.</summary>
    internal static int FirstScoredRow(PerplexityProtocol protocol, int sequenceLength)
        => protocol == PerplexityProtocol.LlamaCpp ? sequenceLength / 2 : 0;
}
