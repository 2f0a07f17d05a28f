using System.Runtime.InteropServices;
using LlmPress.Numerics;

namespace LlmPress.Sparsity;

/// <summary>
/// FP32 weights as a checkpoint of another float dtype stores them. Rounding keeps every zero a zero (±0 maps to ±0
/// in BF16 and FP16), so a pruned weight stays exactly sparse; a tiny kept value may round to 0 in FP16 (below 2⁻²⁵),
/// which only adds zeros.
/// </summary>
public static class StoredValues
{
    /// <summary>Rounds <paramref name="values"/> in place to the nearest values of <paramref name="type"/> (F32: unchanged).</summary>
    /// <exception cref="ArgumentException">Not F32, F16 or BF16.</exception>
    public static void Round(DType type, Span<float> values)
    {
        switch (type)
        {
            case DType.F32:
                break;
            case DType.BF16:
                for (int i = 0; i < values.Length; i++) values[i] = FloatConversion.BFloat16ToSingle(FloatConversion.SingleToBFloat16(values[i]));
                break;
            case DType.F16:
                for (int i = 0; i < values.Length; i++) values[i] = (float)(Half)values[i];
                break;
            default:
                throw new ArgumentException($"Weights stored as {type} cannot be pruned in place; expected F32, F16 or BF16.", nameof(type));
        }
    }

    /// <summary>The raw little-endian bytes of <paramref name="values"/> in <paramref name="type"/> (rounded to nearest).</summary>
    public static byte[] ToBytes(DType type, ReadOnlySpan<float> values)
    {
        switch (type)
        {
            case DType.F32:
                return MemoryMarshal.AsBytes(values).ToArray();
            case DType.BF16:
            {
                var result = new ushort[values.Length];
                for (int i = 0; i < values.Length; i++) result[i] = FloatConversion.SingleToBFloat16(values[i]);
                return MemoryMarshal.AsBytes(result.AsSpan()).ToArray();
            }
            case DType.F16:
            {
                var result = new Half[values.Length];
                for (int i = 0; i < values.Length; i++) result[i] = (Half)values[i];
                return MemoryMarshal.AsBytes(result.AsSpan()).ToArray();
            }
            default:
                throw new ArgumentException($"Cannot store weights as {type}; expected F32, F16 or BF16.", nameof(type));
        }
    }
}
