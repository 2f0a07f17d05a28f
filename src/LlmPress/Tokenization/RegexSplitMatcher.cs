using System.Text.RegularExpressions;

namespace LlmPress.Tokenization;

/// <summary>
/// A split pattern run by .NET <see cref="Regex"/>. Hugging Face runs these patterns with Oniguruma on UTF-8; the
/// syntax used by real tokenizers (\p{L}, \p{N}, (?i:...), (?!\S)) means the same in .NET, and .NET's \s equals
/// Unicode White_Space. One difference remains: .NET matches UTF-16 code units, so a character outside the BMP is
/// a surrogate pair that \p{L} or \p{N} never match. The well-known patterns therefore use hand-written scanners
/// (<see cref="KnownPatternMatcher"/>); this class serves any other pattern.
/// </summary>
internal sealed class RegexSplitMatcher : SplitMatcher
{
    // Generous: a pathological pattern fails loudly instead of hanging an encode.
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);

    private readonly Regex _regex;

    public RegexSplitMatcher(string pattern)
    {
        _regex = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant, s_timeout);
    }

    public override void FindMatches(ReadOnlySpan<char> text, List<TextPiece> matches)
    {
        foreach (ValueMatch m in _regex.EnumerateMatches(text))
            matches.Add(new TextPiece(m.Index, m.Length));
    }
}
