using System.Text;

namespace LlmPress.Tokenization;

/// <summary>
/// tokenizers' <c>ByteLevel</c> pre-tokenizer: optionally prefixes each piece with a space, optionally splits with
/// the GPT-2 pattern, and marks the pieces for the byte → character mapping that <see cref="Tokenizer"/> applies
/// just before BPE (it must therefore be the last pre-tokenizer step).
/// </summary>
internal sealed class ByteLevelPreTokenizer : PreTokenizer
{
    /// <summary>The pattern GPT-2 and ByteLevel(use_regex: true) split with.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private readonly bool _addPrefixSpace;
    private readonly SplitPreTokenizer? _split;

    public ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex)
    {
        _addPrefixSpace = addPrefixSpace;
        if (useRegex) _split = new SplitPreTokenizer(KnownPatternMatcher.Create(Gpt2Pattern)!, SplitBehavior.Isolated, invert: false);
    }

    public override bool IsByteLevel => true;

    public override string Split(string text, List<TextPiece> pieces)
    {
        if (_addPrefixSpace) text = PrefixSpaces(text, pieces);
        return _split is null ? text : _split.Split(text, pieces);
    }

    // Rebuilds the text with a space before every piece that does not already start with one.
    private static string PrefixSpaces(string text, List<TextPiece> pieces)
    {
        var sb = new StringBuilder(text.Length + pieces.Count);
        for (int i = 0; i < pieces.Count; i++)
        {
            TextPiece piece = pieces[i];
            int start = sb.Length;
            if (piece.Length == 0 || text[piece.Start] != ' ') sb.Append(' ');
            sb.Append(text, piece.Start, piece.Length);
            pieces[i] = new TextPiece(start, sb.Length - start);
        }
        return sb.ToString();
    }
}
