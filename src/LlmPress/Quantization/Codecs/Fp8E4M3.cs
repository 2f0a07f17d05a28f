namespace LlmPress.Quantization;

/// <summary>
/// FP8 E4M3 ("E4M3FN", OCP FP8): 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinity.
/// Normal: (1 + m/8)·2^(e − 7) for e in 1..15 (e = 15, m = 7 is NaN, so the largest value is 0x7E = 448);
/// subnormal: m·2^−9 for e = 0. NaN is 0x7F / 0xFF. Used for NVFP4 block scales.
/// </summary>
public static class Fp8E4M3
{
    /// <summary>Largest finite value (code 0x7E).</summary>
    public const float MaxValue = 448f;
    /// <summary>The canonical NaN code (0xFF is NaN as well).</summary>
    public const byte NaN = 0x7F;

    private static readonly float[] s_table = BuildTable();

    /// <summary>Decodes one code (table lookup; 0x7F and 0xFF give NaN).</summary>
    public static float Decode(byte code) => s_table[code];

    /// <summary>
    /// Rounds to the nearest E4M3 value with ties to even, saturating: |x| ≥ 448 (including ±∞) gives ±448; NaN gives
    /// <see cref="NaN"/>. The sign is kept, so −0 encodes to 0x80.
    /// </summary>
    public static byte Encode(float x)
    {
        if (float.IsNaN(x)) return NaN;
        uint bits = BitConverter.SingleToUInt32Bits(x);
        byte sign = (byte)((bits >> 24) & 0x80);
        float a = MathF.Abs(x);
        if (a >= MaxValue) return (byte)(sign | 0x7E);
        if (a < 0.015625f) // 2^−6: subnormal range, steps of 2^−9; code 8 (= 2^−6) is where rounding up lands.
            return (byte)(sign | (int)MathF.Round(a * 512f)); // a·2^9 is exact; MathF.Round is ties-to-even
        // Normal: round the 23-bit FP32 mantissa to 3 bits, ties to even; a carry moves into the exponent as it should.
        uint abits = bits & 0x7FFF_FFFF;
        uint rounded = abits + 0x7_FFFF + ((abits >> 20) & 1);
        int code = (int)(rounded >> 20) - ((127 - 7) << 3);
        return (byte)(sign | Math.Min(code, 0x7E)); // a < 448 never rounds past 448; the clamp only documents it
    }

    private static float[] BuildTable()
    {
        var table = new float[256];
        for (int c = 0; c < 256; c++)
        {
            int e = (c >> 3) & 0xF, m = c & 7;
            float magnitude = e == 0 ? m * (1f / 512f) : (8 + m) * MathF.ScaleB(1f, e - 10); // (1 + m/8)·2^(e−7)
            if (e == 15 && m == 7) magnitude = float.NaN;
            table[c] = (c & 0x80) != 0 ? -magnitude : magnitude;
        }
        return table;
    }
}
