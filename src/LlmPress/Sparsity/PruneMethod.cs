namespace LlmPress.Sparsity;

/// <summary>How the pruning pipeline chooses and compensates the zeroed weights.</summary>
public enum PruneMethod
{
    /// <summary>Smallest |w| in the layer (N:M: in each group); data-free, no compensation.</summary>
    Magnitude,
    /// <summary>
    /// Wanda (Sun et al., arXiv 2306.11695): smallest |w_ij|·‖x_j‖₂ within each output row (N:M: each group), no
    /// compensation; needs calibration inputs (only the norms, i.e. the Hessian's diagonal).
    /// </summary>
    Wanda,
    /// <summary>
    /// SparseGPT (Frantar &amp; Alistarh, arXiv 2301.00774): OBS saliency w²/[H⁻¹]ᵢᵢ chosen per block of 128 columns on
    /// the error-updated weights, with GPTQ's column-by-column error compensation; can quantize in the same pass.
    /// </summary>
    SparseGpt,
    /// <summary>
    /// Iterative OBS (arXiv 2408.17163): starts from SparseGPT and repeats curvature-aware steps that may re-select the
    /// mask, until the layer's output error stops improving.
    /// </summary>
    Iobs,
}
