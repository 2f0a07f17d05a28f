namespace LlmPress.Tokenization;

/// <summary>
/// What <c>Encode(text, addSpecialTokens: true)</c> wraps around a single sequence: the ids before and after it
/// (from a TemplateProcessing "single" template such as <c>&lt;s&gt; $A</c>, Bert/Roberta processing, or
/// tokenizer_config.json's add_bos_token/add_eos_token).
/// </summary>
internal sealed record SpecialTokenTemplate(int[] Prefix, int[] Suffix)
{
    public static SpecialTokenTemplate Empty { get; } = new([], []);

    public bool IsEmpty => Prefix.Length == 0 && Suffix.Length == 0;

    /// <summary>This template applied after <paramref name="inner"/> (a post-processor Sequence).</summary>
    public SpecialTokenTemplate Wrap(SpecialTokenTemplate inner) => new([.. Prefix, .. inner.Prefix], [.. inner.Suffix, .. Suffix]);
}
