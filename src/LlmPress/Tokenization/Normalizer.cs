namespace LlmPress.Tokenization;

/// <summary>A tokenizer.json <c>normalizer</c>: rewrites text before pre-tokenization. Immutable and thread-safe.</summary>
internal abstract class Normalizer
{
    public abstract string Normalize(string text);
}
