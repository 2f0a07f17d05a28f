namespace LlmPress.Tokenization;

/// <summary>A range [Start, Start + Length) of the text being pre-tokenized.</summary>
internal readonly record struct TextPiece(int Start, int Length)
{
    public int End => Start + Length;
}
