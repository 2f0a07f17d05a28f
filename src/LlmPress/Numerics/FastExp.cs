using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LlmPress.Numerics;

/// <summary>
/// The softmax inner loop in one pass: x ← exp(x − shift) and Σ, with a single-precision exp (Cody–Waite range
/// reduction to r ∈ [−ln2/2, ln2/2], degree-7 Taylor polynomial, exponent bits added directly) instead of
/// TensorPrimitives' Subtract/Exp/Sum, which take three passes and compute each float exp through double.
/// Accuracy: the polynomial's truncation error is r⁸/8! ≤ 5·10⁻⁹ relative, so each value is within ~2 ulp of
/// exp(x − shift) (see FastExpTests); results below e^−87.3 flush to 0 (negligible beside a softmax sum ≥ 1).
/// Every tier evaluates the same per-element formula with fused multiply-adds, so elements are bit-identical across
/// tiers; only the order of the sum differs.
/// </summary>
public static class FastExp
{
    private const float Log2E = 1.44269504088896341f;
    private const float Ln2Hi = 0.693359375f;          // few significant bits: n · Ln2Hi is exact
    private const float Ln2Lo = -2.12194440e-4f;       // ln 2 − Ln2Hi
    private const float RoundMagic = 12582912f;        // 1.5 · 2²³: adding it rounds to an integer in the low bits
    private const int MagicBits = 0x4B400000;          // bit pattern of RoundMagic
    private const float Lowest = -87.33654f;           // below: result 0 (2⁻¹²⁶ is the smallest normal)
    private const float Highest = 88.37626f;           // clamp so that n ≤ 127 (x − shift ≤ 0 in softmax anyway)
    private const float C2 = 1f / 2, C3 = 1f / 6, C4 = 1f / 24, C5 = 1f / 120, C6 = 1f / 720, C7 = 1f / 5040;

    /// <summary>x[i] ← exp(x[i] − shift) for every element; returns Σ of the results (FP32, fixed order).</summary>
    // Fully optimized at once: decode attention calls it per head and token (see CausalAttention.DecodeGroup).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float ExponentiateShiftedSum(Span<float> x, float shift)
    {
        ref float start = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(x);
        int n = x.Length, i = 0;
        float sum = 0;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var shiftV = Vector512.Create(shift);
            var acc0 = Vector512<float>.Zero;
            var acc1 = Vector512<float>.Zero;
            for (; i + 32 <= n; i += 32)
            {
                var e0 = Exp(Vector512.LoadUnsafe(ref start, (nuint)i) - shiftV);
                var e1 = Exp(Vector512.LoadUnsafe(ref start, (nuint)(i + 16)) - shiftV);
                e0.StoreUnsafe(ref start, (nuint)i);
                e1.StoreUnsafe(ref start, (nuint)(i + 16));
                acc0 += e0;
                acc1 += e1;
            }
            for (; i + 16 <= n; i += 16)
            {
                var e = Exp(Vector512.LoadUnsafe(ref start, (nuint)i) - shiftV);
                e.StoreUnsafe(ref start, (nuint)i);
                acc0 += e;
            }
            sum = Vector512.Sum(acc0 + acc1);
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var shiftV = Vector256.Create(shift);
            var acc = Vector256<float>.Zero;
            for (; i + 8 <= n; i += 8)
            {
                var e = Exp(Vector256.LoadUnsafe(ref start, (nuint)i) - shiftV);
                e.StoreUnsafe(ref start, (nuint)i);
                acc += e;
            }
            sum = Vector256.Sum(acc);
        }
        for (; i < n; i++)
        {
            float e = Exp(Unsafe.Add(ref start, i) - shift);
            Unsafe.Add(ref start, i) = e;
            sum += e;
        }
        return sum;
    }

    /// <summary>exp(x) by the formula above (scalar form of the vector code, same bits per element).</summary>
    public static float Exp(float x)
    {
        float xc = MathF.Min(x, Highest);
        float t = MathF.FusedMultiplyAdd(xc, Log2E, RoundMagic);
        float nf = t - RoundMagic;
        float r = MathF.FusedMultiplyAdd(nf, -Ln2Hi, xc);
        r = MathF.FusedMultiplyAdd(nf, -Ln2Lo, r);
        float p = MathF.FusedMultiplyAdd(C7, r, C6);
        p = MathF.FusedMultiplyAdd(p, r, C5);
        p = MathF.FusedMultiplyAdd(p, r, C4);
        p = MathF.FusedMultiplyAdd(p, r, C3);
        p = MathF.FusedMultiplyAdd(p, r, C2);
        p = MathF.FusedMultiplyAdd(p, r, 1f);
        p = MathF.FusedMultiplyAdd(p, r, 1f);
        float scale = BitConverter.Int32BitsToSingle((BitConverter.SingleToInt32Bits(t) - MagicBits + 127) << 23);
        float e = p * scale;
        return x < Lowest ? 0f : e; // NaN compares false and stays NaN
    }

    /// <summary>exp of each lane (the same formula as <see cref="Exp(float)"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Exp(Vector512<float> x)
    {
        var xc = Vector512.Min(x, Vector512.Create(Highest));
        var t = Vector512.FusedMultiplyAdd(xc, Vector512.Create(Log2E), Vector512.Create(RoundMagic));
        var nf = t - Vector512.Create(RoundMagic);
        var r = Vector512.FusedMultiplyAdd(nf, Vector512.Create(-Ln2Hi), xc);
        r = Vector512.FusedMultiplyAdd(nf, Vector512.Create(-Ln2Lo), r);
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(C7), r, Vector512.Create(C6));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(C5));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(C4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(C3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(C2));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        var scale = ((t.AsInt32() - Vector512.Create(MagicBits - 127)) << 23).AsSingle();
        var e = p * scale;
        return Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(Lowest)), Vector512<float>.Zero, e);
    }

    /// <summary>exp of each lane (the same formula as <see cref="Exp(float)"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Exp(Vector256<float> x)
    {
        var xc = Vector256.Min(x, Vector256.Create(Highest));
        var t = Vector256.FusedMultiplyAdd(xc, Vector256.Create(Log2E), Vector256.Create(RoundMagic));
        var nf = t - Vector256.Create(RoundMagic);
        var r = Vector256.FusedMultiplyAdd(nf, Vector256.Create(-Ln2Hi), xc);
        r = Vector256.FusedMultiplyAdd(nf, Vector256.Create(-Ln2Lo), r);
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(C7), r, Vector256.Create(C6));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C5));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C4));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C3));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C2));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<float>.One);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<float>.One);
        var scale = ((t.AsInt32() - Vector256.Create(MagicBits - 127)) << 23).AsSingle();
        var e = p * scale;
        return Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(Lowest)), Vector256<float>.Zero, e);
    }
}
