namespace LlmPress.Tokenization;

/// <summary>tokenizers' <c>Split</c> pre-tokenizer: split on a pattern's matches with a delimiter behavior.</summary>
internal sealed class SplitPreTokenizer : PreTokenizer
{
    private readonly SplitMatcher _matcher;
    private readonly SplitBehavior _behavior;
    private readonly bool _invert;

    public SplitPreTokenizer(SplitMatcher matcher, SplitBehavior behavior, bool invert)
    {
        _matcher = matcher;
        _behavior = behavior;
        _invert = invert;
    }

    public override string Split(string text, List<TextPiece> pieces)
    {
        var output = new List<TextPiece>(pieces.Count * 4 + 4);
        var matches = new List<TextPiece>();
        foreach (TextPiece piece in pieces)
        {
            matches.Clear();
            _matcher.FindMatches(text.AsSpan(piece.Start, piece.Length), matches);
            AppendPieces(piece, matches, _invert, _behavior, output);
        }
        pieces.Clear();
        pieces.AddRange(output);
        return text;
    }

    /// <summary>
    /// Appends the non-empty pieces <paramref name="piece"/> splits into, given its delimiter
    /// <paramref name="matches"/> (relative to the piece), following tokenizers' <c>NormalizedString::split</c>.
    /// </summary>
    internal static void AppendPieces(
        TextPiece piece, List<TextPiece> matches, bool invert, SplitBehavior behavior, List<TextPiece> output)
    {
        if (behavior == SplitBehavior.Isolated)
        {
            // Every match and every gap is its own piece, whichever side is inverted: the common, fast case.
            int position = 0;
            foreach (TextPiece m in matches)
            {
                if (m.Start > position) output.Add(new TextPiece(piece.Start + position, m.Start - position));
                if (m.Length > 0) output.Add(new TextPiece(piece.Start + m.Start, m.Length));
                position = m.End;
            }
            if (position < piece.Length) output.Add(new TextPiece(piece.Start + position, piece.Length - position));
            return;
        }

        // General case: (range, isDelimiter) entries covering the piece, then fold them per behavior.
        var entries = new List<(TextPiece Range, bool IsDelimiter)>(matches.Count * 2 + 1);
        int at = 0;
        foreach (TextPiece m in matches)
        {
            if (m.Start > at) entries.Add((new TextPiece(piece.Start + at, m.Start - at), invert));
            entries.Add((new TextPiece(piece.Start + m.Start, m.Length), !invert));
            at = m.End;
        }
        if (at < piece.Length) entries.Add((new TextPiece(piece.Start + at, piece.Length - at), invert));

        int firstOutput = output.Count;
        switch (behavior)
        {
            case SplitBehavior.Removed:
                foreach ((TextPiece range, bool isDelimiter) in entries)
                    if (!isDelimiter) output.Add(range);
                break;

            case SplitBehavior.MergedWithPrevious:
            {
                bool previousWasDelimiter = false;
                foreach ((TextPiece range, bool isDelimiter) in entries)
                {
                    if (isDelimiter && !previousWasDelimiter && output.Count > firstOutput)
                        output[^1] = new TextPiece(output[^1].Start, range.End - output[^1].Start);
                    else
                        output.Add(range);
                    previousWasDelimiter = isDelimiter;
                }
                break;
            }

            case SplitBehavior.MergedWithNext:
            {
                // Walk backwards so a delimiter can be prepended to the piece that follows it.
                bool previousWasDelimiter = false;
                for (int i = entries.Count - 1; i >= 0; i--)
                {
                    (TextPiece range, bool isDelimiter) = entries[i];
                    if (isDelimiter && !previousWasDelimiter && output.Count > firstOutput)
                        output[^1] = new TextPiece(range.Start, output[^1].End - range.Start);
                    else
                        output.Add(range);
                    previousWasDelimiter = isDelimiter;
                }
                output.Reverse(firstOutput, output.Count - firstOutput);
                break;
            }

            case SplitBehavior.Contiguous:
            {
                bool previousWasDelimiter = false;
                foreach ((TextPiece range, bool isDelimiter) in entries)
                {
                    if (isDelimiter == previousWasDelimiter && output.Count > firstOutput)
                        output[^1] = new TextPiece(output[^1].Start, range.End - output[^1].Start);
                    else
                        output.Add(range);
                    previousWasDelimiter = isDelimiter;
                }
                break;
            }
        }

        // tokenizers drops empty splits (zero-length regex matches).
        for (int i = output.Count - 1; i >= firstOutput; i--)
            if (output[i].Length == 0) output.RemoveAt(i);
    }
}
