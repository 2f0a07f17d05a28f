namespace LlmPress.Tokenization;

/// <summary>A range of the input that is either an added token (<see cref="TokenId"/> ≥ 0) or text to encode (-1).</summary>
internal readonly record struct TextSegment(int Start, int Length, int TokenId)
{
    public bool IsToken => TokenId >= 0;
}
