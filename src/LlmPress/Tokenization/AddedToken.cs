namespace LlmPress.Tokenization;

/// <summary>An entry of tokenizer.json <c>added_tokens</c>: text matched before the model runs.</summary>
/// <param name="Id">Token id.</param>
/// <param name="Content">Exact text of the token.</param>
/// <param name="Special">Skipped by decoding with skipSpecialTokens.</param>
/// <param name="SingleWord">Only matches when not inside a word (no word character right before or after).</param>
/// <param name="LStrip">Also swallows the whitespace before it.</param>
/// <param name="RStrip">Also swallows the whitespace after it.</param>
/// <param name="Normalized">Matched in the normalized text instead of the raw input.</param>
internal sealed record AddedToken(
    int Id, string Content, bool Special, bool SingleWord, bool LStrip, bool RStrip, bool Normalized);
