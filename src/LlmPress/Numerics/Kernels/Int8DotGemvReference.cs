namespace LlmPress.Numerics.Kernels;

/// <summary>
/// Scalar reference of <see cref="Int8DotGemv"/>, written from the definition rather than the kernel's layout: the
/// activation quantized per 32-column block (sx_b = max|x_b| / 127, x8_c = round_to_even(x_c · 127 / max|x_b|)), then
/// y_r = Σ_c sw · (level − z) · sx_b · x8_c summed in double.
/// </summary>
internal static class Int8DotGemvReference
{
    /// <summary>x[k] → (x8[k], sx[ceil(k/32)]) with <see cref="Int8Activation"/>'s rules for NaN/∞ and tiny blocks.</summary>
    public static (sbyte[] Values, float[] Scales) QuantizeActivation(ReadOnlySpan<float> x)
    {
        int blocks = (x.Length + 31) / 32;
        var values = new sbyte[x.Length];
        var scales = new float[blocks];
        for (int b = 0; b < blocks; b++)
        {
            var block = x.Slice(32 * b, Math.Min(32, x.Length - 32 * b));
            var (amax, bad) = BlockMax(block);
            if (bad || amax < Int8Activation.TinyBlock)
            {
                scales[b] = bad ? float.NaN : 0f;
                continue; // values stay 0
            }
            float inverse = 127f / amax;
            for (int j = 0; j < block.Length; j++) values[32 * b + j] = (sbyte)MathF.Round(block[j] * inverse, MidpointRounding.ToEven);
            scales[b] = amax / 127f;
        }
        return (values, scales);
    }

    /// <summary>max|v| over the block's finite values, and whether it holds a NaN or ±∞ (shared with <see cref="Int16DotGemvReference"/>).</summary>
    internal static (float Max, bool NonFinite) BlockMax(ReadOnlySpan<float> block)
    {
        float amax = 0f;
        bool bad = false;
        foreach (float v in block)
        {
            if (!float.IsFinite(v)) bad = true;
            else amax = Math.Max(amax, Math.Abs(v));
        }
        return (amax, bad);
    }

    /// <summary>y[W.Rows] for one activation row x[W.Cols], in double.</summary>
    public static double[] Multiply(QuantizedMatrix w, ReadOnlySpan<float> x)
    {
        var (values, scales) = QuantizeActivation(x[..w.Cols]);
        var y = new double[w.Rows];
        for (int r = 0; r < w.Rows; r++)
        {
            double sum = 0;
            for (int c = 0; c < w.Cols; c++)
            {
                int g = r * w.Groups + c / w.GroupSize;
                double weight = (double)w.Scale(r, c / w.GroupSize) * ((double)Level(w, r, c) - (w.Zeros?[g] ?? 0f));
                sum += weight * ((double)scales[c / 32] * values[c]);
            }
            y[r] = sum;
        }
        return y;
    }

    /// <summary>
    /// Σ_c |sw| · (u/F + O/F + |z|) · |sx_b · x8_c| for row r (u the code's byte, level = (u − O)/F): the magnitude the
    /// kernel's FP32 roundings are relative to (its code terms and its zero-point/offset terms are summed apart, so
    /// they can cancel).
    /// </summary>
    public static double Magnitude(QuantizedMatrix w, ReadOnlySpan<float> x, int r)
    {
        var (values, scales) = QuantizeActivation(x[..w.Cols]);
        double sum = 0;
        for (int c = 0; c < w.Cols; c++)
        {
            int g = r * w.Groups + c / w.GroupSize;
            var map = w.ByteLevels!;
            byte code = w.Codes[(long)r * w.RowBytes + c / 2];
            double u = map.Bytes[(c & 1) == 0 ? code & 15 : code >> 4];
            sum += Math.Abs((double)w.Scale(r, c / w.GroupSize)) * ((u + map.Offset) / map.Factor + Math.Abs((double)(w.Zeros?[g] ?? 0f)))
                * Math.Abs((double)scales[c / 32] * values[c]);
        }
        return sum;
    }

    private static float Level(QuantizedMatrix w, int r, int c)
    {
        byte b = w.Codes[(long)r * w.RowBytes + c / 2];
        return w.Levels![(c & 1) == 0 ? b & 15 : b >> 4];
    }
}
