namespace LlmPress.Tokenization;

/// <summary>The parts of a tokenizer.json, built and validated by <see cref="TokenizerJsonReader"/>.</summary>
internal sealed record TokenizerDefinition
{
    public required BpeModel Model { get; init; }

    public required IReadOnlyList<AddedToken> AddedTokens { get; init; }

    public Normalizer? Normalizer { get; init; }

    public PreTokenizer? PreTokenizer { get; init; }

    public TokenDecoder? Decoder { get; init; }

    /// <summary>What the post_processor adds around a single sequence (empty for none or ByteLevel).</summary>
    public required SpecialTokenTemplate Template { get; init; }

    /// <summary>True when every merge joining "x" + "▁…" has x ending in "▁" (see <see cref="Tokenizer"/>).</summary>
    public bool MergesRespectMetaspace { get; init; }
}
