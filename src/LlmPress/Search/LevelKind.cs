namespace LlmPress.Search;

/// <summary>What the levels of a <see cref="LevelDatabase"/> vary.</summary>
public enum LevelKind
{
    /// <summary>INT bit widths (2–8), quantized with GPTQ or RTN.</summary>
    Bits,

    /// <summary>Unstructured sparsities in [0, 1), pruned with SparseGPT, Wanda or magnitude.</summary>
    Sparsity,

    /// <summary>Depth pruning: the attention and MLP sub-blocks of every decoder layer, each kept or dropped (<see cref="DepthUnits"/>).</summary>
    Depth,
}
