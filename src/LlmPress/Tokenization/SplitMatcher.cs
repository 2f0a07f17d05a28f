namespace LlmPress.Tokenization;

/// <summary>Finds the non-overlapping delimiter matches of a split pattern, left to right.</summary>
internal abstract class SplitMatcher
{
    /// <summary>Appends the matches in <paramref name="text"/> as ranges relative to its start.</summary>
    public abstract void FindMatches(ReadOnlySpan<char> text, List<TextPiece> matches);
}
