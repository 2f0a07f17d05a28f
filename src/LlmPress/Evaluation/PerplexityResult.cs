namespace LlmPress.Evaluation;

/// <param name="Perplexity">exp(mean negative log-likelihood) over the scored tokens.</param>
/// <param name="MeanNll">Mean negative log-likelihood in nats.</param>
/// <param name="Windows">Windows evaluated.</param>
/// <param name="TokensScored">Predictions that contributed.</param>
/// <param name="TokensProcessed">Tokens run through the model (windows × sequence length).</param>
/// <param name="Seconds">Wall time of the forward passes.</param>
public sealed record PerplexityResult(double Perplexity, double MeanNll, int Windows, long TokensScored, long TokensProcessed, double Seconds)
{
    public double TokensPerSecond => Seconds > 0 ? TokensProcessed / Seconds : 0;
}
