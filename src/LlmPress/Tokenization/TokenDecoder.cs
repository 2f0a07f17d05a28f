namespace LlmPress.Tokenization;

/// <summary>
/// A tokenizer.json <c>decoder</c> step, mirroring tokenizers' <c>decode_chain</c>: rewrites the list of token
/// strings in place; the final text is the concatenation. Immutable and thread-safe.
/// </summary>
internal abstract class TokenDecoder
{
    public abstract void DecodeChain(List<string> tokens);
}
