namespace LlmPress.Numerics.Kernels;

/// <summary>
/// Scalar reference of <see cref="Int16DotGemv"/>, written from the definition rather than the kernel's layout: the
/// activation's first 64·⌊k/64⌋ columns quantized per 128-column block (sx_b = max|x_b| / 32767, x16_c =
/// round_to_even(x_c · 32767 / max|x_b|)), the rest kept in FP32, then y_r = Σ_c sw · (u − z) · x̂_c summed in double.
/// </summary>
internal static class Int16DotGemvReference
{
    /// <summary>x[k] → x̂[k] (sx_b · x16_c where quantized, x_c past the whole 64-column units) and sx[blocks].</summary>
    public static (double[] Values, int[] Codes, float[] Scales) QuantizeActivation(ReadOnlySpan<float> x)
    {
        int quantized = x.Length / 64 * 64, blocks = (quantized + 127) / 128;
        var values = new double[x.Length];
        var codes = new int[quantized];
        var scales = new float[blocks];
        for (int b = 0; b < blocks; b++)
        {
            var block = x.Slice(128 * b, Math.Min(128, quantized - 128 * b));
            var (amax, bad) = Int8DotGemvReference.BlockMax(block);
            if (bad || amax < Int8Activation.TinyBlock)
            {
                scales[b] = bad ? float.NaN : 0f;
                for (int j = 0; j < block.Length; j++) values[128 * b + j] = scales[b]; // NaN, or 0 · x16 = 0
                continue;
            }
            float inverse = 32767f / amax;
            scales[b] = amax / 32767f;
            for (int j = 0; j < block.Length; j++)
            {
                codes[128 * b + j] = (int)MathF.Round(block[j] * inverse, MidpointRounding.ToEven);
                values[128 * b + j] = (double)scales[b] * codes[128 * b + j];
            }
        }
        for (int c = quantized; c < x.Length; c++) values[c] = x[c];
        return (values, codes, scales);
    }

    /// <summary>y[W.Rows] for one activation row x[W.Cols], in double.</summary>
    public static double[] Multiply(QuantizedMatrix w, ReadOnlySpan<float> x)
    {
        var (values, _, _) = QuantizeActivation(x[..w.Cols]);
        var y = new double[w.Rows];
        for (int r = 0; r < w.Rows; r++)
        {
            double sum = 0;
            for (int c = 0; c < w.Cols; c++) sum += Weight(w, r, c) * values[c];
            y[r] = sum;
        }
        return y;
    }

    /// <summary>
    /// Σ_c |sw| · (u + |z|) · |x̂_c| for row r: the magnitude the kernel's FP32 roundings are relative to (its code
    /// terms and its zero-point terms are summed apart, so they can cancel).
    /// </summary>
    public static double Magnitude(QuantizedMatrix w, ReadOnlySpan<float> x, int r)
    {
        var (values, _, _) = QuantizeActivation(x[..w.Cols]);
        double sum = 0;
        for (int c = 0; c < w.Cols; c++)
        {
            int g = c / w.GroupSize;
            double u = w.Codes[(long)r * w.RowBytes + c];
            sum += Math.Abs((double)w.Scale(r, g)) * (u + Math.Abs((double)(w.Zeros?[r * w.Groups + g] ?? 0f))) * Math.Abs(values[c]);
        }
        return sum;
    }

    private static double Weight(QuantizedMatrix w, int r, int c)
    {
        int g = c / w.GroupSize;
        return (double)w.Scale(r, g) * (w.Codes[(long)r * w.RowBytes + c] - (double)(w.Zeros?[r * w.Groups + g] ?? 0f));
    }
}
