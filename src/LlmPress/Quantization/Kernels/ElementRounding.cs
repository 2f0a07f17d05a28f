using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LlmPress.Quantization;

/// <summary>
/// Quantize-then-dequantize of single elements with fixed group parameters, as a struct operator (TensorPrimitives
/// style) so generic kernels get a specialised copy without virtual calls. The scalar and the vector member must be
/// bit-identical per lane.
/// </summary>
internal interface IElementRounding
{
    float Apply(float x);
    Vector256<float> Apply(Vector256<float> x);
}

/// <summary>
/// GPTQ's integer grid: q = clamp(round(x / scale) + zero, 0, maxq) (round half to even, as torch.round), value =
/// scale·(q − zero). The value is computed from the integer code, exactly as <see cref="IntFormat"/> dequantizes it.
/// </summary>
internal readonly struct IntRounding(float scale, float zero, float maxq) : IElementRounding
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Code(float x, float scale, float zero, float maxq)
    {
        float q = MathF.Round(x / scale) + zero;
        if (q < 0f) q = 0f;
        if (q > maxq) q = maxq;
        return (int)q;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Code(Vector256<float> x, Vector256<float> scale, Vector256<float> zero, Vector256<float> maxq)
    {
        var q = Vector256.Round(x / scale) + zero;
        q = Vector256.Min(Vector256.Max(q, Vector256<float>.Zero), maxq);
        return Vector256.ConvertToInt32(q);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Value(int code, float scale, float zero) => scale * ((float)code - zero);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Value(Vector256<int> code, Vector256<float> scale, Vector256<float> zero) =>
        scale * (Vector256.ConvertToSingle(code) - zero);

    public float Apply(float x) => Value(Code(x, scale, zero, maxq), scale, zero);

    public Vector256<float> Apply(Vector256<float> x)
    {
        var s = Vector256.Create(scale);
        var z = Vector256.Create(zero);
        return Value(Code(x, s, z, Vector256.Create(maxq)), s, z);
    }
}

/// <summary>FP4 E2M1 with a block scale: code = E2M1(x / scale), value = E2M1 value · scale.</summary>
internal readonly struct Fp4Rounding(float scale) : IElementRounding
{
    public float Apply(float x) => Fp4E2M1.Decode(Fp4E2M1.Encode(x / scale)) * scale;

    public Vector256<float> Apply(Vector256<float> x)
    {
        var s = Vector256.Create(scale);
        Fp4E2M1.Encode(x / s, out var value);
        return value * s;
    }
}
