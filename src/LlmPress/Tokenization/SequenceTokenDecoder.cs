namespace LlmPress.Tokenization;

/// <summary>tokenizers' <c>Sequence</c> decoder: each step works on the output of the one before.</summary>
internal sealed class SequenceTokenDecoder : TokenDecoder
{
    private readonly TokenDecoder[] _steps;

    public SequenceTokenDecoder(TokenDecoder[] steps) => _steps = steps;

    public override void DecodeChain(List<string> tokens)
    {
        foreach (TokenDecoder step in _steps) step.DecodeChain(tokens);
    }
}
