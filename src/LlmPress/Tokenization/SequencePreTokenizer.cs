namespace LlmPress.Tokenization;

/// <summary>tokenizers' <c>Sequence</c> pre-tokenizer: each step splits the pieces of the one before.</summary>
internal sealed class SequencePreTokenizer : PreTokenizer
{
    private readonly PreTokenizer[] _steps;

    public SequencePreTokenizer(PreTokenizer[] steps) => _steps = steps;

    public override bool IsByteLevel => _steps.Length > 0 && _steps[^1].IsByteLevel;

    public override string Split(string text, List<TextPiece> pieces)
    {
        foreach (PreTokenizer step in _steps) text = step.Split(text, pieces);
        return text;
    }
}
