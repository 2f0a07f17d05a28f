using LlmPress.Models;

namespace LlmPress.Quantization;

/// <summary>
/// Round-to-nearest quantization of a whole model in memory, every decoder-layer linear then running from the packed
/// kernels: what `llmpress bench` measures packed decode and prefill speed on, without writing a checkpoint.
/// </summary>
public static class PackedModel
{
    /// <summary>
    /// Replaces every decoder-layer linear of <paramref name="model"/> by its RTN quantization in
    /// <paramref name="format"/> (one layer at a time, so only one FP32 copy of a matrix exists at once) and returns
    /// the bytes the packed layers hold.
    /// </summary>
    /// <exception cref="ArgumentException">The packed kernels do not take the format (INT2/3, HIGGS) or its grouping.</exception>
    public static long QuantizeInPlace(LlamaModel model, QuantFormat format)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(format);
        long bytes = 0;
        foreach (var layer in model.Layers)
            foreach (var linear in layer.Linears)
                bytes += Pack(linear, format);
        return bytes;
    }

    /// <summary>
    /// Replaces the LM head by its RTN quantization in <paramref name="format"/> (as `quantize --lm-head` does; a tied
    /// embedding stays as it is) and returns the bytes the packed head holds.
    /// </summary>
    /// <exception cref="ArgumentException">The packed kernels do not run the format.</exception>
    public static long QuantizeHeadInPlace(LlamaModel model, QuantFormat format)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(format);
        return Pack(model.LmHead, format);
    }

    // linear's weight rounded to format (fitted to its width) and run from the packed kernels; returns the packed bytes.
    private static long Pack(LinearLayer linear, QuantFormat format)
    {
        var fitted = format.FitRotationTo(linear.InFeatures);
        var w = linear.Weight;
        var matrix = KernelMatrix.TryCreate(fitted.Quantize(w.ToFloatArray(), w.Rows, w.Cols))
            ?? throw new ArgumentException($"{linear.Name}: the packed kernels do not run {fitted.Name} ([{w.Rows}, {w.Cols}]).");
        linear.SetQuantizedWeight(matrix, fitted.RotationBlockSize);
        return matrix.MemoryBytes;
    }
}
