using LlmPress.Evaluation;
using LlmPress.Models;

namespace LlmPress.Search;

/// <summary>Perplexity of a model over a set of equal-length windows: exp(Σ NLL / Σ predicted tokens), every position scored.</summary>
public static class WindowPerplexity
{
    /// <summary>Evaluates <paramref name="model"/> as it currently is on <paramref name="windows"/>.</summary>
    /// <exception cref="ArgumentException">No windows.</exception>
    public static double Evaluate(LlamaModel model, IReadOnlyList<int[]> windows)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(windows);
        if (windows.Count == 0) throw new ArgumentException("Give at least one window.", nameof(windows));
        var scorer = new WindowScorer(model);
        double nll = 0;
        long tokens = 0;
        foreach (var w in windows)
        {
            nll += scorer.ScoreWindow(w, 0);
            tokens += w.Length - 1;
        }
        return Math.Exp(nll / tokens);
    }
}
