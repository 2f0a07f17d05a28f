using System.Buffers;
using System.Numerics.Tensors;
using LlmPress.Numerics;
using LlmPress.Numerics.Kernels;

namespace LlmPress.Models;

/// <summary>
/// Linear layers that read the same input (q/k/v, gate/up) run together: at decode-sized inputs their GEMVs share one
/// parallel region (<see cref="SharedInputGemv"/>) and, for rotated formats, one online rotation of the input.
/// Decided on every call from the layers' current weights, so a weight replaced by compression simply changes the
/// decision; the outputs equal each layer's own <see cref="LinearLayer.Forward"/> bit for bit.
/// </summary>
internal static class SharedInputProjection
{
    /// <summary>outputs[j][tokenCount, layers[j].OutFeatures] = layers[j].Forward(x) for layers of equal InFeatures.</summary>
    public static void Forward(ReadOnlySpan<LinearLayer> layers, ReadOnlySpan<float> x, int tokenCount, ReadOnlySpan<float[]> outputs)
    {
        if (!CanShare(layers, tokenCount))
        {
            for (int j = 0; j < layers.Length; j++) layers[j].Forward(x, tokenCount, outputs[j]);
            return;
        }
        var first = layers[0];
        int inFeatures = first.InFeatures, cols = first.WeightColumns;
        Span<QuantizedMatrix?> packed = [null, null, null, null];
        Span<WeightView> weights = [default, default, default, default];
        for (int j = 0; j < layers.Length; j++)
        {
            packed[j] = layers[j].Quantized;
            if (packed[j] is null) weights[j] = layers[j].Weight;
        }
        x = x[..(tokenCount * inFeatures)];
        if (first.InputRotationBlockSize is not null)
        {
            // As LinearLayer.Forward does for each layer: zero-pad every row to cols and rotate, here once for all.
            float[] buffer = ArrayPool<float>.Shared.Rent(tokenCount * cols);
            try
            {
                var rotated = buffer.AsSpan(0, tokenCount * cols);
                first.RotateInputs(x, tokenCount, rotated);
                SharedInputGemv.Run(rotated, tokenCount, cols, packed[..layers.Length], weights[..layers.Length], outputs, parallel: true,
                    DecodeActivations.AppliesTo(tokenCount));
            }
            finally
            {
                ArrayPool<float>.Shared.Return(buffer);
            }
        }
        else
        {
            SharedInputGemv.Run(x, tokenCount, cols, packed[..layers.Length], weights[..layers.Length], outputs, parallel: true,
                DecodeActivations.AppliesTo(tokenCount));
        }
        for (int j = 0; j < layers.Length; j++)
            if (layers[j].Bias is { } bias)
                for (int t = 0; t < tokenCount; t++)
                {
                    var row = outputs[j].AsSpan(t * layers[j].OutFeatures, layers[j].OutFeatures);
                    TensorPrimitives.Add(row, bias, row);
                }
    }

    /// <summary>
    /// True when every layer takes the GEMV path for this many tokens, all packed or all float weights, with the same
    /// input width and rotation (only then is one shared pass the same computation as the separate ones).
    /// </summary>
    private static bool CanShare(ReadOnlySpan<LinearLayer> layers, int tokenCount)
    {
        if (layers.Length < 2 || layers.Length > SharedInputGemv.MaxMembers || tokenCount < 1) return false;
        var first = layers[0];
        bool packed = first.Quantized is not null;
        int cols = first.WeightColumns;
        if (packed ? tokenCount > Gemm.QuantizedGemvMaxRows : !Gemm.UseGemv(tokenCount, cols)) return false;
        foreach (var layer in layers)
        {
            if (layer.InFeatures != first.InFeatures || layer.InputRotationBlockSize != first.InputRotationBlockSize) return false;
            if ((layer.Quantized is not null) != packed) return false;
            if (!packed && !DTypeInfo.IsWeightFloat(layer.Weight.Type)) return false;
        }
        return true;
    }
}
