namespace LlmPress.Quantization;

/// <summary>
/// E8M0 scales (OCP MX v1.0): an unsigned 8-bit biased exponent, value 2^(code − 127); no sign, no mantissa, no zero.
/// Code 0xFF is NaN. Used for MXFP4 block scales.
/// </summary>
public static class E8M0
{
    public const int Bias = 127;
    public const int MinExponent = -127;
    public const int MaxExponent = 127;
    /// <summary>The NaN code.</summary>
    public const byte NaN = 0xFF;

    /// <summary>Code of 2^<paramref name="exponent"/>, with the exponent clamped to [−127, 127].</summary>
    public static byte FromExponent(int exponent) => (byte)(Math.Clamp(exponent, MinExponent, MaxExponent) + Bias);

    /// <summary>The exponent a code stands for (code − 127); 0xFF (NaN) gives 128.</summary>
    public static int ToExponent(byte code) => code - Bias;

    /// <summary>2^(code − 127) as FP32 (exact, 2^−127 is an FP32 subnormal); 0xFF gives NaN.</summary>
    public static float Decode(byte code) =>
        code == NaN ? float.NaN :
        code == 0 ? BitConverter.UInt32BitsToSingle(0x0040_0000) : // 2^−127
        BitConverter.UInt32BitsToSingle((uint)code << 23);
}
