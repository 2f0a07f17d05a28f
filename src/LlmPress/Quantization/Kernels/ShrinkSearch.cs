using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LlmPress.Quantization;

/// <summary>
/// The MSE scale search of GPTQ's <c>Quantizer.find_params(mse=True)</c>: try shrink factors p_i = 1 − i/100 for
/// i = 0..79 (grid 100, maxshrink 0.8), scale the min-max range by p_i, and keep the candidate with the smallest
/// Σ|Q(x) − x|^2.4 (first one wins ties, so i = 0, the min-max choice, is kept unless another is strictly better).
/// FP-Quant's observer uses 1 − i·0.8/100 for i = 0..99; we use GPTQ's grid for every format.
/// </summary>
/// <remarks>
/// The error sum has a fixed order so that the scalar reference and the Vector256 version agree bit for bit:
/// element i is added to partial sum (i mod 8) in increasing i, and the partials are combined as
/// ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)).
/// </remarks>
internal static class ShrinkSearch
{
    public const int Grid = 100;
    public const float MaxShrink = 0.8f;
    public const float Norm = 2.4f;

    private static readonly float[] s_factors = BuildFactors();

    /// <summary>p_i = 1 − i/100, i = 0..79, as FP32; p_0 = 1 exactly.</summary>
    public static ReadOnlySpan<float> Factors => s_factors;

    private static float[] BuildFactors()
    {
        var f = new float[(int)(MaxShrink * Grid)];
        for (int i = 0; i < f.Length; i++) f[i] = (float)(1.0 - i / (double)Grid);
        return f;
    }

    /// <summary>Σ |Q(x) − x|^2.4 over the group, in the lane order described on the class.</summary>
    public static float ErrorSum<TRounding>(ReadOnlySpan<float> x, in TRounding rounding, bool vectorized)
        where TRounding : struct, IElementRounding
    {
        if (vectorized && Vector256.IsHardwareAccelerated)
        {
            ref float r = ref MemoryMarshal.GetReference(x);
            var acc = Vector256<float>.Zero;
            int i = 0;
            for (; i + 8 <= x.Length; i += 8)
            {
                var v = Vector256.LoadUnsafe(ref r, (nuint)i);
                acc += ErrorNorm.Pow24(Vector256.Abs(rounding.Apply(v) - v));
            }
            int rest = x.Length - i;
            if (rest > 0)
            {
                Span<float> tail = stackalloc float[8];
                tail.Clear();
                x[i..].CopyTo(tail);
                var v = Vector256.Create((ReadOnlySpan<float>)tail);
                var e = ErrorNorm.Pow24(Vector256.Abs(rounding.Apply(v) - v));
                var live = Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(rest)).AsSingle();
                acc += e & live;
            }
            return Combine(acc.GetElement(0), acc.GetElement(1), acc.GetElement(2), acc.GetElement(3),
                acc.GetElement(4), acc.GetElement(5), acc.GetElement(6), acc.GetElement(7));
        }
        else
        {
            Span<float> lanes = stackalloc float[8];
            lanes.Clear();
            for (int i = 0; i < x.Length; i++)
                lanes[i & 7] += ErrorNorm.Pow24(MathF.Abs(rounding.Apply(x[i]) - x[i]));
            return Combine(lanes[0], lanes[1], lanes[2], lanes[3], lanes[4], lanes[5], lanes[6], lanes[7]);
        }
    }

    private static float Combine(float s0, float s1, float s2, float s3, float s4, float s5, float s6, float s7) =>
        ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
}
