namespace LlmPress.Evaluation;

/// <summary>A compressed model measured against its base on the same windows.</summary>
/// <param name="Model">Perplexity of the evaluated (e.g. quantized) model.</param>
/// <param name="Base">Perplexity of the base model.</param>
/// <param name="MeanKlDivergence">Mean over scored positions of KL(p_base ‖ p_model), in nats.</param>
/// <param name="MaxKlDivergence">Largest per-position KL divergence.</param>
/// <param name="Top1Agreement">Fraction of scored positions where both models' most likely next token is the same.</param>
public sealed record ComparisonResult(PerplexityResult Model, PerplexityResult Base, double MeanKlDivergence, double MaxKlDivergence, double Top1Agreement);
