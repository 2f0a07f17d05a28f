namespace LlmPress.Sparsity;

/// <summary>How a pruned (not quantized) linear is stored in the output checkpoint.</summary>
public enum SparseLayout
{
    /// <summary>Bitmask for N:M layers when it is smaller than dense (it always is for 2:4 in BF16/FP16/FP32), dense otherwise.</summary>
    Auto,
    /// <summary>Dense "X.weight" in the source dtype, pruned entries exactly 0 (any loader reads it).</summary>
    Dense,
    /// <summary>
    /// compressed-tensors' sparse-24-bitmask layout (N:M layers only; unstructured ones stay dense): "X.compressed"
    /// [rows, cols·(M−N)/M] the kept values in row order, "X.bitmask" [rows, ⌈cols/8⌉] U8 with bit j of byte k set when
    /// column 8k+j is kept (little bit order), "X.shape" I64 [2, 1] = [rows, cols].
    /// </summary>
    Bitmask,
}
