using System.Runtime.InteropServices;

namespace LlmPress.Tokenization;

/// <summary>
/// Turns token ids into text one id at a time, for printing generated text as it is produced. Not thread-safe;
/// create one per generation (<see cref="Tokenizer.CreateStreamDecoder"/>).
/// </summary>
/// <remarks>
/// Works like tokenizers' <c>DecodeStream</c>: it decodes a small window made of the last emitted token(s) plus the
/// new ones, and returns what the window adds beyond the previously decoded prefix. So the decoder chain sees
/// context, which (a) holds back a character whose UTF-8 bytes span several tokens until it is complete (no
/// U+FFFD mid-stream), and (b) applies SentencePiece's leading-space strip only at the very start of the stream.
/// The concatenation of all <see cref="Append"/> results and <see cref="Flush"/> equals
/// <see cref="Tokenizer.Decode"/> of all ids.
/// </remarks>
public sealed class TokenStreamDecoder
{
    private readonly Tokenizer _tokenizer;
    private readonly bool _skipSpecialTokens;
    private readonly List<int> _window = new();
    private string _prefix = "";   // decoded text of _window[.._prefixCount], already emitted
    private int _prefixCount;      // leading ids of _window already fully emitted

    internal TokenStreamDecoder(Tokenizer tokenizer, bool skipSpecialTokens)
    {
        _tokenizer = tokenizer;
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>Adds one id; returns the text it completes (often the token's text, sometimes "" while a character is incomplete).</summary>
    public string Append(int id)
    {
        _window.Add(id);
        string text = _tokenizer.Decode(CollectionsMarshal.AsSpan(_window), _skipSpecialTokens);
        if (text.Length <= _prefix.Length || text[^1] == '\uFFFD') return "";

        string added = text.StartsWith(_prefix, StringComparison.Ordinal) ? text[_prefix.Length..] : text;
        // Keep only the ids decoded after the old prefix as the next window's context.
        int newPrefixCount = _window.Count - _prefixCount;
        _window.RemoveRange(0, _prefixCount);
        _prefixCount = newPrefixCount;
        _prefix = _tokenizer.Decode(CollectionsMarshal.AsSpan(_window), _skipSpecialTokens);
        return added;
    }

    /// <summary>Returns whatever is still held back (an incomplete character decodes as U+FFFD) and resets the stream.</summary>
    public string Flush()
    {
        string text = _tokenizer.Decode(CollectionsMarshal.AsSpan(_window), _skipSpecialTokens);
        string rest = text.Length > _prefix.Length && text.StartsWith(_prefix, StringComparison.Ordinal)
            ? text[_prefix.Length..]
            : "";
        Reset();
        return rest;
    }

    /// <summary>Forgets all state, as for a new stream (the next text is again the start of a stream).</summary>
    public void Reset()
    {
        _window.Clear();
        _prefix = "";
        _prefixCount = 0;
    }
}
