namespace LlmPress.Tokenization;

/// <summary>tokenizers' <c>NFC</c> and <c>NFD</c> normalizers.</summary>
internal sealed class UnicodeNormalizer : Normalizer
{
    private readonly bool _compose;

    public UnicodeNormalizer(bool compose) => _compose = compose;

    public override string Normalize(string text) =>
        _compose ? UnicodeNormalization.ToNfc(text) : UnicodeNormalization.ToNfd(text);
}
