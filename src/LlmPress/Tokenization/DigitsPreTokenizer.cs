using System.Globalization;
using System.Text;

namespace LlmPress.Tokenization;

/// <summary>
/// tokenizers' <c>Digits</c> pre-tokenizer: splits numeric characters (Rust's <c>char::is_numeric</c>, i.e. general
/// categories Nd, Nl and No, so "²" counts) from the rest; each digit alone when individual_digits, else runs of
/// digits.
/// </summary>
internal sealed class DigitsPreTokenizer : PreTokenizer
{
    private readonly bool _individualDigits;

    public DigitsPreTokenizer(bool individualDigits) => _individualDigits = individualDigits;

    public override string Split(string text, List<TextPiece> pieces)
    {
        var output = new List<TextPiece>(pieces.Count * 2 + 4);
        var matches = new List<TextPiece>();
        foreach (TextPiece piece in pieces)
        {
            matches.Clear();
            ReadOnlySpan<char> span = text.AsSpan(piece.Start, piece.Length);
            for (int i = 0; i < span.Length;)
            {
                int length = Rune.DecodeFromUtf16(span[i..], out Rune rune, out int consumed) == System.Buffers.OperationStatus.Done
                    ? consumed : 1;
                if (IsNumeric(rune, span[i])) matches.Add(new TextPiece(i, length));
                i += length;
            }
            SplitPreTokenizer.AppendPieces(piece, matches, invert: false,
                _individualDigits ? SplitBehavior.Isolated : SplitBehavior.Contiguous, output);
        }
        pieces.Clear();
        pieces.AddRange(output);
        return text;
    }

    private static bool IsNumeric(Rune rune, char first)
    {
        if (first < 0x80) return (uint)(first - '0') <= 9;
        return Rune.GetUnicodeCategory(rune) is UnicodeCategory.DecimalDigitNumber
            or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;
    }
}
