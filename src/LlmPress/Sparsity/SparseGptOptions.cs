using LlmPress.Quantization;

namespace LlmPress.Sparsity;

/// <summary>
/// Settings of <see cref="SparseGpt.Prune"/>, named and defaulted as in IST-DASLab sparsegpt.py's
/// <c>fasterprune(blocksize=128, percdamp=.01)</c>, plus the joint quantization of its <c>--wbits</c>.
/// </summary>
public sealed record SparseGptOptions
{
    /// <summary>The defaults below.</summary>
    public static SparseGptOptions Default { get; } = new();

    /// <summary>
    /// Columns per block (default 128): unstructured masks are chosen per block on the error-updated weights, and the
    /// columns after a block get one GEMM update. For N:M it is rounded up to a multiple of M. Must be ≥ 1.
    /// </summary>
    public int BlockSize { get; init; } = 128;

    /// <summary>Dampening λ = DampPercent · mean(diag H) (default 0.01). Must be finite and ≥ 0.</summary>
    public double DampPercent { get; init; } = 0.01;

    /// <summary>Retries with 10× the dampening when H + λI is not numerically positive definite (default 4), each reported in <see cref="PruneResult.Warnings"/>.</summary>
    public int MaxDampRetries { get; init; } = 4;

    /// <summary>
    /// Joint sparse + quantized (SparseGPT's <c>--wbits</c>): quantize every column after masking, with group scales
    /// chosen as GPTQ chooses them (from the current weights when a group starts). INT (symmetric or asymmetric: the
    /// integer zero point makes 0 exact), MXFP4 and NVFP4 keep pruned weights exactly 0. HIGGS and rotated formats are
    /// refused: they quantize W·R, where the zeros of W do not survive. Null (default): prune only.
    /// </summary>
    public QuantFormat? Format { get; init; }

    /// <summary>How group scales are chosen when quantizing (default MinMax).</summary>
    public ScaleSearch ScaleSearch { get; init; } = ScaleSearch.MinMax;

    /// <summary>NVFP4 only: a shared per-tensor global scale (see <see cref="GptqOptions.Nvfp4GlobalScale"/>); null computes the layer's own.</summary>
    public float? Nvfp4GlobalScale { get; init; }

    /// <summary>
    /// [rows, cols]: prune exactly these weights (e.g. a magnitude or Wanda mask) instead of choosing; SparseGPT then only
    /// compensates (and optionally quantizes). The pattern is then not applied. Null (default): SparseGPT chooses.
    /// </summary>
    public bool[]? FixedMask { get; init; }

    /// <summary>Use up to <see cref="Numerics.Parallelism.MaxThreads"/> threads; results are bit-identical either way (default true).</summary>
    public bool Parallel { get; init; } = true;

    /// <summary>Name used in exception messages and warnings; optional.</summary>
    public string? LayerName { get; init; }
}
