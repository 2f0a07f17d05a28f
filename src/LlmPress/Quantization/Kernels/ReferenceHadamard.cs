namespace LlmPress.Quantization;

/// <summary>
/// Scalar fast Walsh–Hadamard transform, the reference the quantizers use until Numerics' HadamardTransform lands
/// (swap it in at the merge; results may change in the last bit, since that is a different butterfly order).
/// Sylvester (natural) order: H_1 = [1], H_2n = [[H_n, H_n], [H_n, −H_n]]; H_n·H_n = n·I, so H_n/√n is orthonormal
/// and its own inverse.
/// </summary>
internal static class ReferenceHadamard
{
    /// <summary>x ← H_n·x (unnormalized), n = x.Length a power of two; O(n log n) in-place butterflies.</summary>
    public static void Transform(Span<float> x)
    {
        int n = x.Length;
        if (n == 0 || (n & (n - 1)) != 0) QuantThrow.Argument_HadamardLength(n);
        for (int h = 1; h < n; h <<= 1)
        {
            for (int i = 0; i < n; i += 2 * h)
            {
                for (int j = i; j < i + h; j++)
                {
                    float a = x[j], b = x[j + h];
                    x[j] = a + b;
                    x[j + h] = a - b;
                }
            }
        }
    }

    /// <summary>x ← H_n·x / √n. The factor is a power of two (exact) when n is a power of four, e.g. 1/32 for n = 1024.</summary>
    public static void TransformNormalized(Span<float> x)
    {
        Transform(x);
        float factor = (float)(1.0 / Math.Sqrt(x.Length));
        for (int i = 0; i < x.Length; i++) x[i] *= factor;
    }
}
