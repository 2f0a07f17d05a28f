namespace LlmPress.Tokenization;

/// <summary>tokenizers' <c>Fuse</c> decoder: concatenates all tokens into one.</summary>
internal sealed class FuseTokenDecoder : TokenDecoder
{
    public override void DecodeChain(List<string> tokens)
    {
        string fused = string.Concat(tokens);
        tokens.Clear();
        tokens.Add(fused);
    }
}
