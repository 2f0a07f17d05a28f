namespace LlmPress.Search;

/// <summary>What error the DP's linearity-theorem sensitivities αₗ are measured with.</summary>
public enum SensitivitySource
{
    /// <summary>
    /// The database's own entries: each level of each linear installed alone (<see cref="LinearitySensitivity.FromDatabase"/>).
    /// Right for Hessian-aware methods (GPTQ, SparseGPT), whose error is not isotropic.
    /// </summary>
    Database,

    /// <summary>
    /// Isotropic Gaussian noise at the database's error sizes (<see cref="LinearitySensitivity.Estimate"/>), as HIGGS
    /// measures it: right when the error is noise-like (rotated grids, RTN); overrates GPTQ's error by 2–4×.
    /// </summary>
    Gaussian,
}
