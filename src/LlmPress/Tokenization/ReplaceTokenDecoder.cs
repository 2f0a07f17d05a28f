namespace LlmPress.Tokenization;

/// <summary>tokenizers' <c>Replace</c> decoder (e.g. "▁" → " "), applied to each token.</summary>
internal sealed class ReplaceTokenDecoder : TokenDecoder
{
    private readonly Normalizer _replace;

    public ReplaceTokenDecoder(ReplaceNormalizer replace) => _replace = replace;

    public override void DecodeChain(List<string> tokens)
    {
        for (int i = 0; i < tokens.Count; i++) tokens[i] = _replace.Normalize(tokens[i]);
    }
}
