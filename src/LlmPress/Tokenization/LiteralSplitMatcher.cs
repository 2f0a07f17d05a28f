namespace LlmPress.Tokenization;

/// <summary>A split pattern given as a literal string (tokenizers' <c>{"String": "..."}</c>).</summary>
internal sealed class LiteralSplitMatcher : SplitMatcher
{
    private readonly string _literal;

    public LiteralSplitMatcher(string literal) => _literal = literal;

    public override void FindMatches(ReadOnlySpan<char> text, List<TextPiece> matches)
    {
        if (_literal.Length == 0) return;
        int offset = 0;
        while (offset < text.Length)
        {
            int found = text[offset..].IndexOf(_literal, StringComparison.Ordinal);
            if (found < 0) break;
            matches.Add(new TextPiece(offset + found, _literal.Length));
            offset += found + _literal.Length;
        }
    }
}
