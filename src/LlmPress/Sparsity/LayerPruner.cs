using LlmPress.Quantization;

namespace LlmPress.Sparsity;

/// <summary>
/// The one place that maps a <see cref="PruneMethod"/> (and joint quantization) to the per-layer pruner that runs it.
/// </summary>
public static class LayerPruner
{
    /// <summary>
    /// Prunes W [rows, cols] of <paramref name="layer"/> to <paramref name="pattern"/> with the options' method; with
    /// <paramref name="format"/> also quantizes it (joint mode: the zeros live in the codes).
    /// </summary>
    /// <param name="options">Method, dampening, iterations, and the joint quantization method.</param>
    /// <param name="weight">W [rows, cols], row-major (Hugging Face [out, in]).</param>
    /// <param name="hessian">H = 2/N·Σxxᵀ of the layer's inputs [cols, cols]; required by every method but magnitude.</param>
    /// <param name="format">Joint mode: the layer's format (<see cref="Quantization.Pipeline.QuantizeOptions.FormatFor"/>); null to prune only.</param>
    /// <param name="nvfp4GlobalScale">Joint NVFP4: the per-tensor scale shared with the layer's fused siblings, or null for its own.</param>
    /// <exception cref="ArgumentException">A missing Hessian, a pattern that does not fit, or a pruner failure (names the layer).</exception>
    public static PruneResult Prune(PruneOptions options, ReadOnlySpan<float> weight, int rows, int cols, float[]? hessian,
        SparsityPattern pattern, QuantFormat? format, float? nvfp4GlobalScale, string layer)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Method != PruneMethod.Magnitude && hessian is null)
            throw new ArgumentException($"{layer}: method {PruneOptions.MethodName(options.Method)} needs the layer's Hessian (calibration data).");
        var quantize = options.EffectiveQuantize;
        if (format is not null && quantize is null) throw new ArgumentException($"{layer}: a joint format without quantize options.", nameof(format));
        bool gptq = format is not null && quantize!.UsesGptq;

        switch (options.Method)
        {
            case PruneMethod.Magnitude:
            {
                var pruned = MagnitudePruner.Prune(weight, rows, cols, pattern, layer);
                if (format is null) return pruned;
                return gptq ? QuantizeOnMask(weight, rows, cols, hessian!, pattern, pruned.Pruned, format, quantize!, nvfp4GlobalScale, layer)
                            : QuantizePruned(pruned, format, quantize!.EffectiveScaleSearch, nvfp4GlobalScale, layer);
            }
            case PruneMethod.Wanda:
            {
                var wanda = WandaPruner.Prune(weight, rows, cols, hessian, pattern, layer);
                if (format is null) return wanda;
                return gptq ? QuantizeOnMask(weight, rows, cols, hessian!, pattern, wanda.Pruned, format, quantize!, nvfp4GlobalScale, layer)
                            : QuantizePruned(wanda, format, quantize!.EffectiveScaleSearch, nvfp4GlobalScale, layer);
            }
            case PruneMethod.SparseGpt:
            {
                var sparse = SparseGpt.Prune(weight, rows, cols, hessian, pattern, new SparseGptOptions
                {
                    DampPercent = options.DampPercent, LayerName = layer,
                    Format = gptq ? format : null, ScaleSearch = quantize?.EffectiveScaleSearch ?? ScaleSearch.MinMax,
                    Nvfp4GlobalScale = gptq ? nvfp4GlobalScale : null,
                });
                return format is null || gptq ? sparse : QuantizePruned(sparse, format, quantize!.EffectiveScaleSearch, nvfp4GlobalScale, layer);
            }
            case PruneMethod.Iobs:
                return IterativeObs.Prune(weight, rows, cols, hessian, pattern, new IterativeObsOptions
                {
                    MaxIterations = options.IobsIterations, DampPercent = options.DampPercent, LayerName = layer,
                });
            default:
                throw new ArgumentOutOfRangeException(nameof(options), options.Method, "Unknown pruning method.");
        }
    }

    // Joint GPTQ on a mask chosen without compensation (magnitude, wanda): SparseGPT's pass with the mask fixed, which
    // only compensates and quantizes.
    private static PruneResult QuantizeOnMask(ReadOnlySpan<float> weight, int rows, int cols, float[] hessian, SparsityPattern pattern,
        bool[] mask, QuantFormat format, Quantization.Pipeline.QuantizeOptions quantize, float? nvfp4GlobalScale, string layer)
    {
        return SparseGpt.Prune(weight, rows, cols, hessian, pattern, new SparseGptOptions
        {
            DampPercent = quantize.DampPercent, LayerName = layer, Format = format, ScaleSearch = quantize.EffectiveScaleSearch,
            Nvfp4GlobalScale = nvfp4GlobalScale, FixedMask = mask,
        });
    }

    /// <summary>
    /// Joint RTN: quantizes the pruned weights as they are. INT (symmetric, and asymmetric whose grid always holds 0),
    /// MXFP4 and NVFP4 code 0 exactly, so the pruned entries dequantize to exactly 0; anything else is an error.
    /// </summary>
    private static PruneResult QuantizePruned(PruneResult pruned, QuantFormat format, ScaleSearch search, float? nvfp4GlobalScale, string layer)
    {
        int rows = pruned.Rows, cols = pruned.Cols;
        var packed = nvfp4GlobalScale is float g
            ? Nvfp4Format.Quantize(format, pruned.Weight, rows, cols, g, search)
            : format.Quantize(pruned.Weight, rows, cols, search);
        var dequantized = packed.Dequantize();
        for (int i = 0; i < dequantized.Length; i++)
            if (pruned.Pruned[i] && dequantized[i] != 0)
                throw new InvalidOperationException($"{layer}: {format.Name} turned the pruned weight [{i / cols}, {i % cols}] into {dequantized[i]}; its grid has no exact zero.");
        return new PruneResult(dequantized, pruned.Pruned, rows, cols, packed, pruned.ErrorByIteration, pruned.Warnings);
    }
}
