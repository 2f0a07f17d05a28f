namespace LlmPress.Tokenization;

/// <summary>
/// tokenizers' <c>Prepend</c> normalizer (SentencePiece's leading "▁"). Like tokenizers, it leaves empty text
/// empty, so encoding "" gives no tokens rather than a lone "▁".
/// </summary>
internal sealed class PrependNormalizer : Normalizer
{
    private readonly string _prefix;

    public PrependNormalizer(string prefix) => _prefix = prefix;

    public override string Normalize(string text) => text.Length == 0 ? text : string.Concat(_prefix, text);
}
