namespace LlmPress.Tokenization;

/// <summary>The scalar settings of a tokenizer.json <c>model</c> of type BPE.</summary>
internal sealed record BpeOptions
{
    /// <summary>model.unk_token: emitted for characters missing from the vocabulary (after byte fallback).</summary>
    public string? UnkToken { get; init; }

    /// <summary>model.fuse_unk: consecutive unknown characters become one unknown token.</summary>
    public bool FuseUnk { get; init; }

    /// <summary>model.byte_fallback: unknown characters become their UTF-8 bytes as "&lt;0xNN&gt;" tokens.</summary>
    public bool ByteFallback { get; init; }

    /// <summary>model.ignore_merges: a pre-token that is itself in the vocabulary is emitted whole (Llama-3).</summary>
    public bool IgnoreMerges { get; init; }

    /// <summary>model.continuing_subword_prefix: prefix of every non-initial symbol (e.g. "##"); null or empty for none.</summary>
    public string? ContinuingSubwordPrefix { get; init; }

    /// <summary>model.end_of_word_suffix: suffix of the final symbol (e.g. "&lt;/w&gt;"); null or empty for none.</summary>
    public string? EndOfWordSuffix { get; init; }
}
