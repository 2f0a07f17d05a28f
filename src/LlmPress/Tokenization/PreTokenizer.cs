namespace LlmPress.Tokenization;

/// <summary>
/// A tokenizer.json <c>pre_tokenizer</c>: splits normalized text into pieces ("words") that BPE encodes
/// independently. Implementations are immutable and thread-safe.
/// </summary>
internal abstract class PreTokenizer
{
    /// <summary>
    /// Splits each of <paramref name="pieces"/> (ranges of <paramref name="text"/>) into finer pieces, in place,
    /// dropping empty ones. Returns the text the pieces now refer to: <paramref name="text"/> itself unless a step
    /// inserts characters (ByteLevel's add_prefix_space).
    /// </summary>
    public abstract string Split(string text, List<TextPiece> pieces);

    /// <summary>True when the pieces must be mapped to GPT-2 byte-level characters before BPE.</summary>
    public virtual bool IsByteLevel => false;
}
