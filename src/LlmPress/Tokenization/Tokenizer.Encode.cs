using System.Text;

namespace LlmPress.Tokenization;

public sealed partial class Tokenizer
{
    private const char Metaspace = '\u2581';

    /// <summary>Encodes text into token ids.</summary>
    /// <param name="text">The text; added tokens written in it (e.g. "&lt;|im_start|&gt;") map to their ids.</param>
    /// <param name="addSpecialTokens">
    /// Wrap the ids as the post-processor says (e.g. a leading BOS for Llama-2-style tokenizers). When the
    /// tokenizer.json has no such post-processor, tokenizer_config.json's add_bos_token/add_eos_token decide.
    /// </param>
    public int[] Encode(string text, bool addSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 4 + 8);
        if (addSpecialTokens) ids.AddRange(_template.Prefix);
        using (var scratch = new EncodeScratch())
        {
            List<TextSegment> segments = scratch.Segments;
            if (_rawSplitter.IsEmpty) segments.Add(new TextSegment(0, text.Length, -1));
            else _rawSplitter.Split(text, 0, text.Length, segments);

            List<TextSegment>? normalizedSegments = _normalizedSplitter.IsEmpty ? null : new List<TextSegment>();
            foreach (TextSegment segment in segments)
            {
                if (segment.IsToken)
                {
                    ids.Add(segment.TokenId);
                    continue;
                }
                string piece = segment.Length == text.Length ? text : text.Substring(segment.Start, segment.Length);
                string normalized = _normalizer?.Normalize(piece) ?? piece;
                if (normalizedSegments is null)
                {
                    EncodeNormalized(normalized, 0, normalized.Length, ids, scratch);
                    continue;
                }
                normalizedSegments.Clear();
                _normalizedSplitter.Split(normalized, 0, normalized.Length, normalizedSegments);
                foreach (TextSegment inner in normalizedSegments)
                {
                    if (inner.IsToken) ids.Add(inner.TokenId);
                    else EncodeNormalized(normalized, inner.Start, inner.Length, ids, scratch);
                }
            }
        }
        if (addSpecialTokens) ids.AddRange(_template.Suffix);
        return ids.ToArray();
    }

    // Pre-tokenizes normalized text[start, start + length) and runs BPE on every piece.
    private void EncodeNormalized(string text, int start, int length, List<int> ids, EncodeScratch scratch)
    {
        if (length == 0) return;
        if (_preTokenizer is not null)
        {
            List<TextPiece> pieces = scratch.Pieces;
            pieces.Clear();
            pieces.Add(new TextPiece(start, length));
            string pieceText = _preTokenizer.Split(text, pieces);
            foreach (TextPiece piece in pieces) EncodePiece(pieceText.AsSpan(piece.Start, piece.Length), ids, scratch);
            return;
        }
        if (!_splitBeforeMetaspace)
        {
            EncodePiece(text.AsSpan(start, length), ids, scratch);
            return;
        }
        // Words start at each "▁" that follows another character (a run of "▁" stays together).
        ReadOnlySpan<char> rest = text.AsSpan(start, length);
        int wordStart = 0;
        int search = 1;
        while (search < rest.Length)
        {
            int found = rest[search..].IndexOf(Metaspace);
            if (found < 0) break;
            int at = search + found;
            if (rest[at - 1] != Metaspace)
            {
                EncodePiece(rest[wordStart..at], ids, scratch);
                wordStart = at;
            }
            search = at + 1;
        }
        EncodePiece(rest[wordStart..], ids, scratch);
    }

    private void EncodePiece(ReadOnlySpan<char> piece, List<int> ids, EncodeScratch scratch)
    {
        if (!_byteLevel)
        {
            _model.Encode(piece, ids);
            return;
        }
        // Byte-level BPE works on the UTF-8 bytes, each spelled as one GPT-2 byte character.
        int maxBytes = Encoding.UTF8.GetMaxByteCount(piece.Length);
        byte[] bytes = scratch.Bytes(maxBytes);
        char[] chars = scratch.Chars(maxBytes);
        int count = Encoding.UTF8.GetBytes(piece, bytes);
        for (int i = 0; i < count; i++) chars[i] = ByteLevelMapping.ToChar(bytes[i]);
        _model.Encode(chars.AsSpan(0, count), ids);
    }
}
