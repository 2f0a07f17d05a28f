namespace LlmPress.Tokenization;

/// <summary>
/// tokenizers' <c>Strip</c> decoder: removes up to <c>start</c> leading and <c>stop</c> trailing occurrences of a
/// character from each token. After <c>Fuse</c> there is one token, so SentencePiece's Strip(" ", 1, 0) drops the
/// space that the "▁" prefix of the first word turned into.
/// </summary>
internal sealed class StripTokenDecoder : TokenDecoder
{
    private readonly char _content;
    private readonly int _start;
    private readonly int _stop;

    public StripTokenDecoder(char content, int start, int stop)
    {
        _content = content;
        _start = start;
        _stop = stop;
    }

    public override void DecodeChain(List<string> tokens)
    {
        for (int i = 0; i < tokens.Count; i++)
        {
            string token = tokens[i];
            int from = 0;
            while (from < token.Length && from < _start && token[from] == _content) from++;
            int to = token.Length;
            while (to > from && token.Length - to < _stop && token[to - 1] == _content) to--;
            if (from != 0 || to != token.Length) tokens[i] = token[from..to];
        }
    }
}
