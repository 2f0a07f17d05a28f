using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LlmPress.Quantization;

/// <summary>
/// |d|^2.4, the error norm of GPTQ's and FP-Quant's MSE scale search (<c>norm=2.4</c>), computed with our own
/// polynomials so the scalar and the Vector256 versions are bit-identical to each other and on every machine
/// (MathF.Pow comes from the C runtime and differs between platforms). Relative error about 1e-6, which is plenty for
/// ranking candidate scales. Arguments below 2^−126 (and 0) give 0.
/// </summary>
/// <remarks>
/// a^2.4 = a²·2^(0.4·log2 a); log2 a = e + log2 m with m in [√½, √2) from the FP32 bits, log2 m by the atanh series
/// 2/ln2·(t + t³/3 + … + t⁹/9), t = (m − 1)/(m + 1); 2^z = 2^k·2^f with k = round(z), f in [−½, ½], 2^f by a degree-7
/// Taylor polynomial. Both versions perform the same FP32 operations in the same order (the JIT does not contract
/// a·b + c into FMA), which is what makes them bit-identical.
/// </remarks>
internal static class ErrorNorm
{
    private const float MinNormal = 1.17549435E-38f; // 2^−126
    private const float Sqrt2 = 1.41421356f;
    private const float TwoOverLn2 = 2.88539008f;
    private const float C3 = 1f / 3, C5 = 1f / 5, C7 = 1f / 7, C9 = 1f / 9;
    // ln2^k / k!
    private const float E1 = 0.693147181f, E2 = 0.240226507f, E3 = 0.0555041087f, E4 = 0.00961812911f,
        E5 = 0.00133335581f, E6 = 0.000154035304f, E7 = 1.52527338e-05f;

    /// <summary>a^2.4 for a ≥ 0 (scalar reference).</summary>
    public static float Pow24(float a)
    {
        if (!(a >= MinNormal)) return 0f;
        int bits = BitConverter.SingleToInt32Bits(a);
        int e = (bits >> 23) - 127;
        float m = BitConverter.Int32BitsToSingle((bits & 0x007F_FFFF) | 0x3F80_0000);
        if (m > Sqrt2)
        {
            m *= 0.5f;
            e += 1;
        }
        float t = (m - 1f) / (m + 1f);
        float t2 = t * t;
        float log2M = TwoOverLn2 * t * (1f + t2 * (C3 + t2 * (C5 + t2 * (C7 + t2 * C9))));
        float z = 0.4f * ((float)e + log2M);
        float k = MathF.Round(z);
        float f = z - k;
        float p = 1f + f * (E1 + f * (E2 + f * (E3 + f * (E4 + f * (E5 + f * (E6 + f * E7))))));
        float twoK = BitConverter.Int32BitsToSingle(((int)k + 127) << 23);
        return a * a * p * twoK;
    }

    /// <summary>Eight lanes of <see cref="Pow24(float)"/>, bit-identical per lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Pow24(Vector256<float> a)
    {
        var normal = Vector256.GreaterThanOrEqual(a, Vector256.Create(MinNormal));
        var bits = a.AsInt32();
        var e = (bits >> 23) - Vector256.Create(127);
        var m = ((bits & Vector256.Create(0x007F_FFFF)) | Vector256.Create(0x3F80_0000)).AsSingle();
        var big = Vector256.GreaterThan(m, Vector256.Create(Sqrt2));
        m = Vector256.ConditionalSelect(big, m * 0.5f, m);
        e -= big.AsInt32(); // the mask is −1 where big
        var one = Vector256.Create(1f);
        var t = (m - one) / (m + one);
        var t2 = t * t;
        var log2M = Vector256.Create(TwoOverLn2) * t
            * (one + t2 * (Vector256.Create(C3) + t2 * (Vector256.Create(C5) + t2 * (Vector256.Create(C7) + t2 * Vector256.Create(C9)))));
        var z = Vector256.Create(0.4f) * (Vector256.ConvertToSingle(e) + log2M);
        var k = Vector256.Round(z);
        var f = z - k;
        var p = one + f * (Vector256.Create(E1) + f * (Vector256.Create(E2) + f * (Vector256.Create(E3) + f * (Vector256.Create(E4)
            + f * (Vector256.Create(E5) + f * (Vector256.Create(E6) + f * Vector256.Create(E7)))))));
        var twoK = ((Vector256.ConvertToInt32(k) + Vector256.Create(127)) << 23).AsSingle();
        var r = a * a * p * twoK;
        return Vector256.ConditionalSelect(normal, r, Vector256<float>.Zero);
    }
}
