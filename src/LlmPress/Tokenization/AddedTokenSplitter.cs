using System.Buffers;
using System.Globalization;
using System.Text;

namespace LlmPress.Tokenization;

/// <summary>
/// Finds added tokens in text like tokenizers' <c>AddedVocabulary::find_matches</c>: leftmost-longest,
/// non-overlapping matches; a single_word match inside a word is skipped; lstrip/rstrip widen a match over
/// adjacent whitespace.
/// </summary>
internal sealed class AddedTokenSplitter
{
    private readonly Dictionary<char, (string Pattern, AddedToken Token)[]> _byFirstChar; // longest first
    private readonly SearchValues<char> _firstChars;

    /// <param name="tokens">The tokens to find, each with the text to match (its content, normalized or not).</param>
    public AddedTokenSplitter(IEnumerable<(string Pattern, AddedToken Token)> tokens)
    {
        _byFirstChar = tokens
            .Where(t => t.Pattern.Length > 0)
            .GroupBy(t => t.Pattern[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Pattern.Length).ToArray());
        _firstChars = SearchValues.Create(_byFirstChar.Keys.ToArray());
    }

    public bool IsEmpty => _byFirstChar.Count == 0;

    /// <summary>Appends the segments covering text[start, start + length).</summary>
    public void Split(string text, int start, int length, List<TextSegment> segments)
    {
        int end = start + length;
        int emitted = start; // end of the last segment appended
        int search = start;
        while (search < end)
        {
            int found = text.AsSpan(search, end - search).IndexOfAny(_firstChars);
            if (found < 0) break;
            int at = search + found;
            AddedToken? token = null;
            int tokenLength = 0;
            foreach ((string pattern, AddedToken candidate) in _byFirstChar[text[at]])
            {
                if (pattern.Length <= end - at && text.AsSpan(at, pattern.Length).SequenceEqual(pattern))
                {
                    token = candidate;
                    tokenLength = pattern.Length;
                    break;
                }
            }
            if (token is null)
            {
                search = at + 1;
                continue;
            }

            int matchStart = at, matchEnd = at + tokenLength;
            search = matchEnd; // matches never overlap, even a discarded single_word one
            if (token.SingleWord && (EndsWithWordChar(text, start, matchStart) || StartsWithWordChar(text, matchEnd, end)))
                continue;
            if (token.LStrip)
            {
                while (matchStart > emitted && char.IsWhiteSpace(text[matchStart - 1])) matchStart--;
            }
            if (token.RStrip)
            {
                while (matchEnd < end && char.IsWhiteSpace(text[matchEnd])) matchEnd++;
                search = matchEnd;
            }
            if (matchStart > emitted) segments.Add(new TextSegment(emitted, matchStart - emitted, -1));
            segments.Add(new TextSegment(matchStart, matchEnd - matchStart, token.Id));
            emitted = matchEnd;
        }
        if (emitted < end) segments.Add(new TextSegment(emitted, end - emitted, -1));
    }

    // tokenizers tests \w$ and ^\w with Rust's Unicode \w: Alphabetic, marks, decimal digits, connector
    // punctuation, joiners. Approximated by general categories (Alphabetic adds a few marks and Nl).
    private static bool EndsWithWordChar(string text, int start, int index)
    {
        if (index <= start) return false;
        int at = index - 1;
        if (char.IsLowSurrogate(text[at]) && at > start && char.IsHighSurrogate(text[at - 1])) at--;
        return IsWordChar(text, at);
    }

    private static bool StartsWithWordChar(string text, int index, int end) => index < end && IsWordChar(text, index);

    private static bool IsWordChar(string text, int index)
    {
        if (Rune.DecodeFromUtf16(text.AsSpan(index), out Rune rune, out _) != OperationStatus.Done) return false;
        if (rune.Value is 0x200C or 0x200D) return true;
        return Rune.GetUnicodeCategory(rune) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter
                or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark
                or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber
                or UnicodeCategory.ConnectorPunctuation => true,
            _ => false,
        };
    }
}
