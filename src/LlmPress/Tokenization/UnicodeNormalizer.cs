using System.Text;

namespace LlmPress.Tokenization;

/// <summary>tokenizers' <c>NFC</c> and <c>NFD</c> normalizers, on .NET's ICU-backed normalization.</summary>
internal sealed class UnicodeNormalizer(bool compose) : Normalizer
{
    private readonly NormalizationForm _form = compose ? NormalizationForm.FormC : NormalizationForm.FormD;

    // IsNormalized is a cheap scan for the common case (already normalized text) and avoids a copy.
    public override string Normalize(string text) => text.IsNormalized(_form) ? text : text.Normalize(_form);
}
