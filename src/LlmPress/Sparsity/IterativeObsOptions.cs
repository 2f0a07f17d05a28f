namespace LlmPress.Sparsity;

/// <summary>Settings of <see cref="IterativeObs.Prune"/>.</summary>
public sealed record IterativeObsOptions
{
    /// <summary>The defaults below.</summary>
    public static IterativeObsOptions Default { get; } = new();

    /// <summary>Most candidate iterates tried after SparseGPT's start, accepted or not (default 20). Must be ≥ 0.</summary>
    public int MaxIterations { get; init; } = 20;

    /// <summary>
    /// Stop when an accepted iterate lowers the relative output error by less than this fraction of it (default 1e-4).
    /// Must be finite and ≥ 0.
    /// </summary>
    public double Tolerance { get; init; } = 1e-4;

    /// <summary>Dampening λ = DampPercent · mean(diag H), for the SparseGPT start and the curvature of the steps (default 0.01).</summary>
    public double DampPercent { get; init; } = 0.01;

    /// <summary>SparseGPT's block size for the start (default 128).</summary>
    public int BlockSize { get; init; } = 128;

    /// <summary>
    /// η of the Newton step towards the dense weights, θ + η·(W₀ − θ), from which the mask is re-selected (default 0.5).
    /// A rejected step halves η for the next try. Must be in (0, 1].
    /// </summary>
    public double Step { get; init; } = 0.5;

    /// <summary>Stop once η has been halved below this (default 1/16). Must be in (0, <see cref="Step"/>].</summary>
    public double MinStep { get; init; } = 1.0 / 16;

    /// <summary>
    /// Preconditioned conjugate-gradient steps per iterate when refitting the kept weights for the chosen mask (default
    /// 8; each is one [rows, cols]·[cols, cols] GEMM). Must be ≥ 1.
    /// </summary>
    public int RefitSteps { get; init; } = 8;

    /// <summary>Use up to <see cref="Numerics.Parallelism.MaxThreads"/> threads; results are bit-identical either way (default true).</summary>
    public bool Parallel { get; init; } = true;

    /// <summary>Name used in exception messages and warnings; optional.</summary>
    public string? LayerName { get; init; }
}
