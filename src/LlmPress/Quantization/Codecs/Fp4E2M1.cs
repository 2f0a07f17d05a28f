using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LlmPress.Quantization;

/// <summary>
/// FP4 E2M1 elements (OCP MX v1.0): 1 sign, 2 exponent (bias 1), 1 mantissa bit; no infinity, no NaN.
/// Code (4 bits) = sign · 8 + magnitude index; magnitudes by index 0..7 = {0, 0.5, 1, 1.5, 2, 3, 4, 6}.
/// Two codes share a byte: element 2j in the low nibble, element 2j + 1 in the high nibble.
/// </summary>
/// <remarks>
/// Rounding is to nearest with ties to the even code (FP-Quant <c>cast_to_fp4</c>), saturating at ±6. Decision
/// thresholds on |x|: ≤ 0.25 → 0, &lt; 0.75 → 0.5, ≤ 1.25 → 1, &lt; 1.75 → 1.5, ≤ 2.5 → 2, &lt; 3.5 → 3, ≤ 5 → 4, else 6.
/// The sign bit is set when x &lt; 0 (as compressed-tensors' packer does): −0.2 encodes to code 8 (−0), while −0.0
/// itself encodes to code 0. The quantizers reject NaN before encoding; Encode maps it to code 0.
/// </remarks>
public static class Fp4E2M1
{
    /// <summary>Largest magnitude.</summary>
    public const float MaxValue = 6f;

    private static readonly float[] s_values =
    [
        0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f,
        -0f, -0.5f, -1f, -1.5f, -2f, -3f, -4f, -6f,
    ];

    /// <summary>The 16 code values, indexed by code (code 8 is −0).</summary>
    public static ReadOnlySpan<float> Values => s_values;

    /// <summary>Decodes the low 4 bits of <paramref name="code"/>.</summary>
    public static float Decode(int code) => s_values[code & 0xF];

    /// <summary>Rounds <paramref name="x"/> to the nearest E2M1 value (ties to even code, saturating) and returns its code.</summary>
    public static byte Encode(float x)
    {
        float a = MathF.Abs(x);
        int m = MagnitudeIndex(a);
        return (byte)(x < 0 ? m | 8 : m);
    }

    // The reference decision ladder; the vector Encode counts the same comparisons (so NaN gives 0 in both).
    private static int MagnitudeIndex(float a) =>
        a > 5f ? 7 :
        a >= 3.5f ? 6 :
        a > 2.5f ? 5 :
        a >= 1.75f ? 4 :
        a > 1.25f ? 3 :
        a >= 0.75f ? 2 :
        a > 0.25f ? 1 : 0;

    /// <summary>
    /// Eight lanes at once, bit-identical to <see cref="Encode"/> / <see cref="Decode"/> per lane:
    /// returns the codes and sets <paramref name="value"/> to the decoded E2M1 value (with its sign, −0 for code 8).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<int> Encode(Vector256<float> x, out Vector256<float> value)
    {
        var a = Vector256.Abs(x);
        // Each passed threshold adds one magnitude step; compare masks are all-ones (−1) when true.
        var m = Vector256.GreaterThan(a, Vector256.Create(0.25f)).AsInt32()
              + Vector256.GreaterThanOrEqual(a, Vector256.Create(0.75f)).AsInt32()
              + Vector256.GreaterThan(a, Vector256.Create(1.25f)).AsInt32()
              + Vector256.GreaterThanOrEqual(a, Vector256.Create(1.75f)).AsInt32()
              + Vector256.GreaterThan(a, Vector256.Create(2.5f)).AsInt32()
              + Vector256.GreaterThanOrEqual(a, Vector256.Create(3.5f)).AsInt32()
              + Vector256.GreaterThan(a, Vector256.Create(5f)).AsInt32();
        var v = Vector256<float>.Zero;
        v = Vector256.ConditionalSelect(Vector256.GreaterThan(a, Vector256.Create(0.25f)), Vector256.Create(0.5f), v);
        v = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(a, Vector256.Create(0.75f)), Vector256.Create(1f), v);
        v = Vector256.ConditionalSelect(Vector256.GreaterThan(a, Vector256.Create(1.25f)), Vector256.Create(1.5f), v);
        v = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(a, Vector256.Create(1.75f)), Vector256.Create(2f), v);
        v = Vector256.ConditionalSelect(Vector256.GreaterThan(a, Vector256.Create(2.5f)), Vector256.Create(3f), v);
        v = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(a, Vector256.Create(3.5f)), Vector256.Create(4f), v);
        v = Vector256.ConditionalSelect(Vector256.GreaterThan(a, Vector256.Create(5f)), Vector256.Create(6f), v);
        var negative = Vector256.LessThan(x, Vector256<float>.Zero);
        value = v | (negative & Vector256.Create(-0f));
        return (-m) | (negative.AsInt32() & Vector256.Create(8));
    }

    /// <summary>
    /// Packs 4-bit codes two per byte (element 2j low nibble, 2j + 1 high nibble). An odd count leaves the last high
    /// nibble 0. <paramref name="packed"/> needs (codes.Length + 1) / 2 bytes.
    /// </summary>
    public static void Pack(ReadOnlySpan<byte> codes, Span<byte> packed) => BitPacking.Pack(codes, 4, packed);

    /// <summary>Inverse of <see cref="Pack"/>: writes codes.Length codes.</summary>
    public static void Unpack(ReadOnlySpan<byte> packed, Span<byte> codes) => BitPacking.Unpack(packed, 4, codes);
}
