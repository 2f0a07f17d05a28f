namespace LlmPress.Gguf;

/// <summary>
/// The largest error encoding to a ggml type may introduce, so a verifier can check converted tensors against their
/// source values independently of the encoder. Per element x of a 32-wide block whose largest magnitude is amax:
/// F32 0; F16 |x|·2^−11 + 2^−25 (half an ulp, half the subnormal spacing); BF16 |x|·2^−8;
/// Q8_0 d/2 + amax·2^−11 + 127·2^−25 with d = amax/127 (rounding, then the FP16 rounding of d times |q| ≤ 127);
/// Q4_0 amax/8 + amax·2^−11 + 8·2^−25 (a whole step: the value opposite the extreme can clamp from 8 to 7 steps);
/// MXFP4 amax/2 (values in (6, 8)·2^(e−127) saturate at 6·2^(e−127), and 2^(e−127) ≤ amax/4).
/// </summary>
public static class GgmlRoundingBound
{
    /// <summary>The bound for one element <paramref name="x"/> of a block with largest magnitude <paramref name="amax"/>.</summary>
    public static float Of(GgmlType type, float x, float amax) => type switch
    {
        GgmlType.F32 => 0f,
        GgmlType.F16 => MathF.Abs(x) * (1f / 2048f) + MathF.ScaleB(1f, -25),
        GgmlType.BF16 => MathF.Abs(x) * (1f / 256f),
        GgmlType.Q8_0 => amax / 254f + amax / 2048f + 127f * MathF.ScaleB(1f, -25),
        GgmlType.Q4_0 => amax / 8f + amax / 2048f + 8f * MathF.ScaleB(1f, -25),
        _ => amax / 2f,
    };

    /// <summary>
    /// The first element of <paramref name="decoded"/> ([rows, cols]) farther from <paramref name="expected"/> than the
    /// bound allows (with 0.1% slack for the float arithmetic of the check itself), as "[row, col]: got vs expected", or null.
    /// </summary>
    public static string? FirstViolation(GgmlType type, ReadOnlySpan<float> decoded, ReadOnlySpan<float> expected, int cols)
    {
        for (int start = 0; start < expected.Length; start += 32)
        {
            int end = Math.Min(start + 32, expected.Length);
            if (start / cols != (end - 1) / cols) end = (start / cols + 1) * cols; // blocks never cross rows
            float amax = 0f;
            for (int i = start; i < end; i++) amax = MathF.Max(amax, MathF.Abs(expected[i]));
            for (int i = start; i < end; i++)
            {
                float error = MathF.Abs(decoded[i] - expected[i]);
                if (!(error <= Of(type, expected[i], amax) * 1.001f))
                    return $"[{i / cols}, {i % cols}]: {decoded[i]:R} vs {expected[i]:R} (bound {Of(type, expected[i], amax):R})";
            }
            if (end != start + 32) start = end - 32;
        }
        return null;
    }
}
