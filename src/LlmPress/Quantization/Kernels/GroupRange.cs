using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LlmPress.Quantization;

/// <summary>
/// Range statistics of one group of weights. Every value is compared strictly against an accumulator that starts at +0,
/// so the result is +0 or an exact element value (never −0) whichever order the elements are visited in: the scalar and
/// the vector versions agree bit for bit.
/// </summary>
internal static class GroupRange
{
    /// <summary>min(0, min x) and max(0, max x): GPTQ's range, which always includes 0.</summary>
    public static void MinMax(ReadOnlySpan<float> x, bool vectorized, out float min, out float max)
    {
        float lo = 0f, hi = 0f;
        int i = 0;
        if (vectorized && Vector256.IsHardwareAccelerated && x.Length >= 8)
        {
            ref float r = ref MemoryMarshal.GetReference(x);
            var vlo = Vector256<float>.Zero;
            var vhi = Vector256<float>.Zero;
            for (; i + 8 <= x.Length; i += 8)
            {
                var v = Vector256.LoadUnsafe(ref r, (nuint)i);
                vlo = Vector256.ConditionalSelect(Vector256.LessThan(v, vlo), v, vlo);
                vhi = Vector256.ConditionalSelect(Vector256.GreaterThan(v, vhi), v, vhi);
            }
            for (int l = 0; l < 8; l++)
            {
                float a = vlo.GetElement(l), b = vhi.GetElement(l);
                if (a < lo) lo = a;
                if (b > hi) hi = b;
            }
        }
        for (; i < x.Length; i++)
        {
            float v = x[i];
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        min = lo;
        max = hi;
    }

    /// <summary>max |x| (0 for an empty or all-zero group).</summary>
    public static float AbsMax(ReadOnlySpan<float> x, bool vectorized)
    {
        float m = 0f;
        int i = 0;
        if (vectorized && Vector256.IsHardwareAccelerated && x.Length >= 8)
        {
            ref float r = ref MemoryMarshal.GetReference(x);
            var vm = Vector256<float>.Zero;
            for (; i + 8 <= x.Length; i += 8)
            {
                var v = Vector256.Abs(Vector256.LoadUnsafe(ref r, (nuint)i));
                vm = Vector256.ConditionalSelect(Vector256.GreaterThan(v, vm), v, vm);
            }
            for (int l = 0; l < 8; l++)
            {
                float a = vm.GetElement(l);
                if (a > m) m = a;
            }
        }
        for (; i < x.Length; i++)
        {
            float a = MathF.Abs(x[i]);
            if (a > m) m = a;
        }
        return m;
    }

    /// <summary>Index of the first NaN or ±∞ in <paramref name="x"/>, or −1.</summary>
    public static int IndexOfNonFinite(ReadOnlySpan<float> x)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float r = ref MemoryMarshal.GetReference(x);
            var exponent = Vector256.Create(0x7F80_0000);
            for (; i + 8 <= x.Length; i += 8)
            {
                var bits = Vector256.LoadUnsafe(ref r, (nuint)i).AsInt32();
                if (Vector256.EqualsAny(bits & exponent, exponent)) break;
            }
        }
        for (; i < x.Length; i++)
            if (!float.IsFinite(x[i])) return i;
        return -1;
    }
}
