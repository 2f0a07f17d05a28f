namespace LlmPress.Tokenization;

public sealed partial class Tokenizer
{
    /// <summary>Decodes token ids into text through the tokenizer's decoder chain.</summary>
    /// <param name="ids">Token ids. Ids that are not tokens of this tokenizer are skipped, as Hugging Face does.</param>
    /// <param name="skipSpecialTokens">Leave out added tokens marked special (BOS, EOS, chat markers).</param>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var tokens = new List<string>(ids.Length);
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)_tokens.Length) continue;
            string? token = _tokens[id];
            if (token is null || (skipSpecialTokens && _special[id])) continue;
            tokens.Add(token);
        }
        if (_decoder is null) return string.Join(' ', tokens);
        _decoder.DecodeChain(tokens);
        return string.Concat(tokens);
    }
}
