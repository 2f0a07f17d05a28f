namespace LlmPress.Quantization;

/// <summary>
/// Settings of <see cref="Gptq.Quantize"/>, named and defaulted as in IST-DASLab gptq.py's
/// <c>fasterquant(blocksize=128, percdamp=.01, groupsize=-1, actorder=False, static_groups=False)</c>. The group size
/// is not here: it belongs to the <see cref="QuantFormat"/> (<see cref="QuantFormat.GroupSize"/>, null = per channel).
/// </summary>
public sealed record GptqOptions
{
    /// <summary>The defaults below.</summary>
    public static GptqOptions Default { get; } = new();

    /// <summary>
    /// Columns per lazy batch (GPTQ paper §4 "Lazy Batch-Updates"; default 128): inside a block the OBS update runs column
    /// by column on the block only, and the rest of the matrix gets one GEMM per block. Rounded up to a multiple of
    /// <see cref="QuantFormat.ColumnsPerStep"/>. It changes only the order of floating-point operations, not the algorithm.
    /// </summary>
    public int BlockSize { get; init; } = 128;

    /// <summary>
    /// Dampening λ = DampPercent · mean(diag H) added to the diagonal before the inverse (gptq.py's percdamp; default
    /// 0.01, i.e. 1%). Must be finite and ≥ 0.
    /// </summary>
    public double DampPercent { get; init; } = 0.01;

    /// <summary>
    /// Quantize columns in order of decreasing H_ii (gptq.py's <c>--act-order</c>, "desc_act"); implies
    /// <see cref="StaticGroups"/> so the packed weight needs no g_idx. For p = 2 formats (HIGGS) pairs move together,
    /// ordered by the sum of their two diagonal entries. Default false.
    /// </summary>
    public bool ActOrder { get; init; }

    /// <summary>
    /// Compute every group's scales once, up front, from the original weights (gptq.py's <c>static_groups</c>; MR-GPTQ's
    /// default) instead of when the group is reached on the error-updated weights. Always on with <see cref="ActOrder"/>.
    /// Default false.
    /// </summary>
    public bool StaticGroups { get; init; }

    /// <summary>
    /// When the Cholesky factorisation fails (H + λI not numerically positive definite), retry with 10× the dampening
    /// this many times (each retry is reported in <see cref="GptqResult.Warnings"/>) before throwing. Default 4, so the
    /// largest dampening tried is 10⁴ · 1% = 100% of the mean diagonal.
    /// </summary>
    public int MaxDampRetries { get; init; } = 4;

    /// <summary>How group scales are chosen (<see cref="ScaleSearch.Mse"/> is MR-GPTQ's MSE scale search). Default MinMax.</summary>
    public ScaleSearch ScaleSearch { get; init; } = ScaleSearch.MinMax;

    /// <summary>
    /// NVFP4 only: the per-tensor global scale g to use instead of the layer's own (vLLM-style fused layers — q/k/v,
    /// gate/up — share the smallest g of the group: take each one's <see cref="Nvfp4Format.ComputeGlobalScale"/> of its
    /// stored-basis weights). Null (default): computed from this layer's stored-basis weights.
    /// </summary>
    public float? Nvfp4GlobalScale { get; init; }

    /// <summary>
    /// Use up to <see cref="Numerics.Parallelism.MaxThreads"/> threads in the GEMMs and the factorisation (the format's
    /// group-scale computation always follows Parallelism.MaxThreads). Results are bit-identical either way and for any
    /// thread count. Default true.
    /// </summary>
    public bool Parallel { get; init; } = true;

    /// <summary>Name used in exception messages and warnings (e.g. "model.layers.3.mlp.down_proj"); optional.</summary>
    public string? LayerName { get; init; }
}
