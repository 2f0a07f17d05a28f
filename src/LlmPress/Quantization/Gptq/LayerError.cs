using LlmPress.Numerics;

namespace LlmPress.Quantization;

/// <summary>
/// How far a quantized layer is from the original: in the weights, and in the layer's outputs on the calibration data
/// (through the Hessian, without the activations).
/// </summary>
public static class LayerError
{
    private const int ChunkRows = 256;

    /// <summary>‖W − Ŵ‖²_F / ‖W‖²_F, summed in double (0 when W is all zero and Ŵ equals it).</summary>
    /// <exception cref="ArgumentException">The spans differ in length.</exception>
    public static double RelativeWeightError(ReadOnlySpan<float> weight, ReadOnlySpan<float> quantized)
    {
        if (weight.Length != quantized.Length) GptqThrow.Argument_Length(null, nameof(quantized), "the weight's shape", weight.Length, quantized.Length);
        double num = 0, den = 0;
        for (int i = 0; i < weight.Length; i++)
        {
            double w = weight[i], d = w - quantized[i];
            num += d * d;
            den += w * w;
        }
        return num == 0 ? 0 : num / den;
    }

    /// <summary>
    /// Relative output error on the calibration inputs: tr(ΔW·H·ΔWᵀ) / tr(W·H·Wᵀ) with ΔW = W − Ŵ, which equals
    /// ‖ΔW·X‖²_F / ‖W·X‖²_F exactly when H ∝ X·Xᵀ (X = [cols, tokens]; any scale, e.g. GPTQ's 2/N, cancels).
    /// Use the undamped Hessian and the original basis for both matrices.
    /// </summary>
    /// <param name="weight">[rows, cols].</param>
    /// <param name="quantized">[rows, cols], e.g. <see cref="GptqResult.Dequantized"/>.</param>
    /// <param name="rows">Output features.</param>
    /// <param name="cols">Input features.</param>
    /// <param name="hessian">[cols, cols], symmetric.</param>
    /// <exception cref="ArgumentException">Wrong lengths.</exception>
    public static double RelativeOutputError(ReadOnlySpan<float> weight, ReadOnlySpan<float> quantized, int rows, int cols, ReadOnlySpan<float> hessian)
    {
        CheckShapes(weight, quantized, rows, cols, hessian);
        double num = QuadraticFormCore(weight, quantized, rows, cols, hessian);
        double den = QuadraticFormCore(weight, default, rows, cols, hessian);
        return num == 0 ? 0 : num / den;
    }

    /// <summary>
    /// tr(M·H·Mᵀ) = Σ_r m_r·H·m_rᵀ for M [rows, cols] (= ‖M·X‖²_F when H = X·Xᵀ): FP32 GEMM products, summed in double.
    /// </summary>
    /// <exception cref="ArgumentException">Wrong lengths.</exception>
    public static double QuadraticForm(ReadOnlySpan<float> m, int rows, int cols, ReadOnlySpan<float> hessian)
    {
        CheckShapes(m, m, rows, cols, hessian);
        return QuadraticFormCore(m, default, rows, cols, hessian);
    }

    // Σ_r d_r·H·d_rᵀ with d = a − b (b empty: d = a), in chunks of rows: T = D·H by GEMM, then Σ T∘D in double.
    private static double QuadraticFormCore(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int rows, int cols, ReadOnlySpan<float> hessian)
    {
        int chunk = Math.Min(rows, ChunkRows);
        var d = new float[(long)chunk * cols];
        var t = new float[(long)chunk * cols];
        double total = 0;
        for (int r0 = 0; r0 < rows; r0 += chunk)
        {
            int count = Math.Min(chunk, rows - r0);
            var dChunk = d.AsSpan(0, count * cols);
            var aChunk = a.Slice(r0 * cols, count * cols);
            if (b.IsEmpty) aChunk.CopyTo(dChunk);
            else System.Numerics.Tensors.TensorPrimitives.Subtract(aChunk, b.Slice(r0 * cols, count * cols), dChunk);
            Gemm.Sgemm(false, false, count, cols, cols, 1f, dChunk, cols, hessian, cols, 0f, t, cols);
            for (int i = 0; i < count * cols; i++) total += (double)t[i] * dChunk[i];
        }
        return total;
    }

    private static void CheckShapes(ReadOnlySpan<float> weight, ReadOnlySpan<float> quantized, int rows, int cols, ReadOnlySpan<float> hessian)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        long size = (long)rows * cols;
        if (weight.Length != size) GptqThrow.Argument_Length(null, "weight", $"[{rows}, {cols}]", size, weight.Length);
        if (quantized.Length != size) GptqThrow.Argument_Length(null, nameof(quantized), $"[{rows}, {cols}]", size, quantized.Length);
        if (hessian.Length != (long)cols * cols) GptqThrow.Argument_Length(null, nameof(hessian), $"[{cols}, {cols}]", (long)cols * cols, hessian.Length);
    }
}
