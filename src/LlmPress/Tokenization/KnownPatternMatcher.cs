using System.Globalization;
using System.Runtime.CompilerServices;

namespace LlmPress.Tokenization;

/// <summary>
/// Hand-written matchers for the split patterns of GPT-2 (ByteLevel's use_regex), Llama-3 and Qwen2/3, equivalent
/// to running the pattern with a backtracking engine (Oniguruma, as Hugging Face does) over code points.
/// </summary>
/// <remarks>
/// Why not <see cref="System.Text.RegularExpressions.Regex"/>: .NET matches UTF-16 code units, so \p{L} and \p{N}
/// never match characters outside the BMP (CJK extension B, mathematical letters and digits), which would split
/// such text differently from the reference; and this scanner is several times faster. Each alternative of the
/// pattern is tried in order at the current position, exactly as the regex engine does; comments quote them.
/// Tests compare it with .NET Regex on BMP text. Case-insensitive contractions compare ASCII letters only.
/// </remarks>
internal sealed class KnownPatternMatcher : SplitMatcher
{
    /// <summary>Llama-3 (tiktoken cl100k style) pre-tokenizer pattern.</summary>
    public const string Llama3Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>Qwen2/Qwen3 pattern: Llama-3's with single digits.</summary>
    public const string QwenPattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private enum CharClass : byte { Letter, Number, WhiteSpace, Other }

    private static readonly CharClass[] s_ascii = BuildAsciiClasses();

    private readonly bool _gpt2;      // GPT-2 alternatives; otherwise the Llama-3 family
    private readonly int _maxDigits;  // \p{N}{1,maxDigits} (Llama-3 family)

    private KnownPatternMatcher(bool gpt2, int maxDigits)
    {
        _gpt2 = gpt2;
        _maxDigits = maxDigits;
    }

    /// <summary>A matcher for <paramref name="pattern"/> when it is one of the known patterns, else null.</summary>
    public static KnownPatternMatcher? Create(string pattern) => pattern switch
    {
        ByteLevelPreTokenizer.Gpt2Pattern => new KnownPatternMatcher(gpt2: true, maxDigits: 0),
        Llama3Pattern => new KnownPatternMatcher(gpt2: false, maxDigits: 3),
        QwenPattern => new KnownPatternMatcher(gpt2: false, maxDigits: 1),
        _ => null,
    };

    public override void FindMatches(ReadOnlySpan<char> text, List<TextPiece> matches)
    {
        int i = 0;
        while (i < text.Length)
        {
            // Every position matches some alternative of these patterns, so the pieces tile the text.
            int end = _gpt2 ? MatchGpt2(text, i) : MatchLlama3(text, i);
            matches.Add(new TextPiece(i, end - i));
            i = end;
        }
    }

    private static int MatchGpt2(ReadOnlySpan<char> text, int i)
    {
        char c = text[i];
        // 's|'t|'re|'ve|'m|'ll|'d
        if (c == '\'')
        {
            int length = ContractionLength(text, i, ignoreCase: false);
            if (length > 0) return i + length;
        }
        //  ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+   — with the optional space
        if (c == ' ' && i + 1 < text.Length)
        {
            CharClass next = Classify(text, i + 1, out _);
            if (next != CharClass.WhiteSpace) return RunEnd(text, i + 1, next);
        }
        CharClass cls = Classify(text, i, out _);
        //  ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+   — without it
        if (cls != CharClass.WhiteSpace) return RunEnd(text, i, cls);
        return MatchTrailingWhiteSpace(text, i);
    }

    private int MatchLlama3(ReadOnlySpan<char> text, int i)
    {
        char c = text[i];
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if (c == '\'')
        {
            int length = ContractionLength(text, i, ignoreCase: true);
            if (length > 0) return i + length;
        }
        CharClass cls = Classify(text, i, out int width);
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if (cls == CharClass.Letter) return RunEnd(text, i, CharClass.Letter);
        if (cls != CharClass.Number && c != '\r' && c != '\n' && i + width < text.Length
            && Classify(text, i + width, out _) == CharClass.Letter)
            return RunEnd(text, i + width, CharClass.Letter);
        // \p{N}{1,3} (Qwen: \p{N})
        if (cls == CharClass.Number)
        {
            int end = i, digits = 0;
            while (end < text.Length && digits < _maxDigits && Classify(text, end, out int w) == CharClass.Number)
            {
                end += w;
                digits++;
            }
            return end;
        }
        //  ?[^\s\p{L}\p{N}]+[\r\n]*
        int start = -1;
        if (cls == CharClass.Other) start = i;
        else if (c == ' ' && i + 1 < text.Length && Classify(text, i + 1, out _) == CharClass.Other) start = i + 1;
        if (start >= 0)
        {
            int end = RunEnd(text, start, CharClass.Other);
            while (end < text.Length && text[end] is '\r' or '\n') end++;
            return end;
        }
        // \s*[\r\n]+ — the whitespace run up to and including its last line break
        int runEnd = RunEnd(text, i, CharClass.WhiteSpace);
        for (int k = runEnd - 1; k >= i; k--)
            if (text[k] is '\r' or '\n') return k + 1;
        return MatchTrailingWhiteSpace(text, i);
    }

    // \s+(?!\S)|\s+ at a whitespace character: the whole run at the end of the text, the run less its last
    // character when more text follows (that character then prefixes the next word), or a lone character.
    private static int MatchTrailingWhiteSpace(ReadOnlySpan<char> text, int i)
    {
        int end = RunEnd(text, i, CharClass.WhiteSpace);
        if (end == text.Length || end - i == 1) return end;
        return end - 1; // White_Space is all in the BMP, so one char is one code point
    }

    private static int ContractionLength(ReadOnlySpan<char> text, int i, bool ignoreCase)
    {
        if (i + 1 >= text.Length) return 0;
        char a = Fold(text[i + 1], ignoreCase);
        if (a is 's' or 't' or 'm' or 'd') return 2;
        if (i + 2 >= text.Length) return 0;
        char b = Fold(text[i + 2], ignoreCase);
        return (a, b) is ('r', 'e') or ('v', 'e') or ('l', 'l') ? 3 : 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static char Fold(char c, bool ignoreCase) => ignoreCase && (uint)(c - 'A') <= 'Z' - 'A' ? (char)(c | 0x20) : c;

    private static int RunEnd(ReadOnlySpan<char> text, int i, CharClass cls)
    {
        while (i < text.Length && Classify(text, i, out int width) == cls) i += width;
        return i;
    }

    // Classifies the code point at i (a surrogate pair counts as one; a lone surrogate is Other).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static CharClass Classify(ReadOnlySpan<char> text, int i, out int width)
    {
        char c = text[i];
        width = 1;
        if (c < 0x80) return s_ascii[c];
        return ClassifyNonAscii(text, i, ref width);
    }

    private static CharClass ClassifyNonAscii(ReadOnlySpan<char> text, int i, ref int width)
    {
        char c = text[i];
        int cp = c;
        if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
        {
            cp = char.ConvertToUtf32(c, text[i + 1]);
            width = 2;
        }
        else if (char.IsWhiteSpace(c))
        {
            return CharClass.WhiteSpace; // \s is Unicode White_Space in both engines
        }
        return CharUnicodeInfo.GetUnicodeCategory(cp) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => CharClass.Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber
                or UnicodeCategory.OtherNumber => CharClass.Number,
            _ => CharClass.Other,
        };
    }

    private static CharClass[] BuildAsciiClasses()
    {
        var table = new CharClass[128];
        for (int c = 0; c < 128; c++)
        {
            table[c] = char.IsAsciiLetter((char)c) ? CharClass.Letter
                : char.IsAsciiDigit((char)c) ? CharClass.Number
                : char.IsWhiteSpace((char)c) ? CharClass.WhiteSpace
                : CharClass.Other;
        }
        return table;
    }
}
