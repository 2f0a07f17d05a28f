namespace LlmPress.Tokenization;

/// <summary>tokenizers' <c>Sequence</c> normalizer: applies its normalizers in order.</summary>
internal sealed class SequenceNormalizer : Normalizer
{
    private readonly Normalizer[] _steps;

    public SequenceNormalizer(Normalizer[] steps) => _steps = steps;

    public override string Normalize(string text)
    {
        foreach (Normalizer step in _steps) text = step.Normalize(text);
        return text;
    }
}
