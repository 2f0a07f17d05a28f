using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LlmPress.Numerics;

/// <summary>Conversions between the stored float types and FP32.</summary>
public static class FloatConversion
{
    /// <summary>Converts raw little-endian elements of <paramref name="type"/> to FP32. destination.Length elements are read.</summary>
    public static void ToSingle(DType type, ReadOnlySpan<byte> source, Span<float> destination)
    {
        switch (type)
        {
            case DType.F32:
                MemoryMarshal.Cast<byte, float>(source)[..destination.Length].CopyTo(destination);
                break;
            case DType.F16:
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(source)[..destination.Length], destination);
                break;
            case DType.BF16:
                BFloat16ToSingle(MemoryMarshal.Cast<byte, ushort>(source)[..destination.Length], destination);
                break;
            default:
                throw new ArgumentException($"Cannot convert {type} to FP32.", nameof(type));
        }
    }

    /// <summary>BF16 is the top half of an FP32 bit pattern, so widening is a 16-bit shift.</summary>
    public static void BFloat16ToSingle(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length > source.Length) throw new ArgumentException("Destination is longer than source.");
        ref ushort src = ref MemoryMarshal.GetReference(source);
        ref uint dst = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(destination));
        int n = destination.Length, i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 16 <= n; i += 16)
            {
                var v = Vector256.LoadUnsafe(ref src, (nuint)i);
                var lo = Vector256.WidenLower(v);
                var hi = Vector256.WidenUpper(v);
                (lo << 16).StoreUnsafe(ref dst, (nuint)i);
                (hi << 16).StoreUnsafe(ref dst, (nuint)(i + 8));
            }
        }
        for (; i + 8 <= n; i += 8)
        {
            var v = Vector128.LoadUnsafe(ref src, (nuint)i);
            (Vector128.WidenLower(v) << 16).StoreUnsafe(ref dst, (nuint)i);
            (Vector128.WidenUpper(v) << 16).StoreUnsafe(ref dst, (nuint)(i + 4));
        }
        for (; i < n; i++) Unsafe.Add(ref dst, i) = (uint)Unsafe.Add(ref src, i) << 16;
    }

    /// <summary>FP32 → BF16 with round-to-nearest-even (NaN stays NaN).</summary>
    public static ushort SingleToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    public static float BFloat16ToSingle(ushort value) => BitConverter.UInt32BitsToSingle((uint)value << 16);

    /// <summary>FP32 → BF16 element by element, bit-identical to <see cref="SingleToBFloat16(float)"/>.</summary>
    public static void SingleToBFloat16(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        if (destination.Length < source.Length) throw new ArgumentException("Destination is shorter than source.");
        int n = source.Length, i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float src = ref MemoryMarshal.GetReference(source);
            ref ushort dst = ref MemoryMarshal.GetReference(destination);
            for (; i + 16 <= n; i += 16)
            {
                var lo = ToBFloat16Bits(Vector256.LoadUnsafe(ref src, (nuint)i));
                var hi = ToBFloat16Bits(Vector256.LoadUnsafe(ref src, (nuint)(i + 8)));
                Vector256.Narrow(lo, hi).StoreUnsafe(ref dst, (nuint)i);
            }
        }
        for (; i < n; i++) destination[i] = SingleToBFloat16(source[i]);
    }

    // Eight floats → their BF16 bits in the low halves of 32-bit lanes (round to nearest even; NaN stays NaN).
    private static Vector256<uint> ToBFloat16Bits(Vector256<float> v)
    {
        var bits = v.AsUInt32();
        var rounded = (bits + Vector256.Create(0x7FFFu) + ((bits >> 16) & Vector256<uint>.One)) >> 16;
        var quietNaN = (bits >> 16) | Vector256.Create(0x40u);
        return Vector256.ConditionalSelect(Vector256.Equals(v, v).AsUInt32(), rounded, quietNaN);
    }
}
