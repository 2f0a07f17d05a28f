namespace LlmPress.Evaluation;

/// <summary>Which predictions of each window count toward perplexity.</summary>
public enum PerplexityProtocol
{
    /// <summary>GPTQ / lm-eval style: every predicted token of every window (N − 1 per window).</summary>
    Gptq,
    /// <summary>llama-perplexity style: only the second half of each window, so every scored token has at least N/2 of context.</summary>
    LlamaCpp,
}
