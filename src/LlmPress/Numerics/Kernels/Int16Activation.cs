using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LlmPress.Numerics.Kernels;

/// <summary>
/// One activation row x[k] quantized to int16 per 128-column block for <see cref="Int16DotGemv"/> (8-bit weights):
/// sx_b = max|x_b| / 32767, x16_c = round_to_even(x_c · (32767 / max|x_b|)), so x_c ≈ sx_b · x16_c with |error| ≤
/// sx_b / 2, about 1.5·10⁻⁵ of the block's max|x|. Only whole 64-column units are quantized (k / 64 of them); the
/// kernel takes the columns past them from x in FP32. Laid out for the kernel: per unit, its 32 even columns then its
/// 32 odd ones (16-bit word j of a unit's codes holds columns 2j and 2j + 1).
/// </summary>
/// <remarks>
/// Why int16 and not int8 as for 4-bit weights: an 8-bit code times an int8 activation overflows vpmaddubsw's int16
/// pair sums (255 · 127 · 2 > 32767), and vpmaddwd on int16 takes the code bytes as they are with 15 bits of
/// activation. A block holding NaN or ±∞ gets sx_b = NaN, so the products it feeds are NaN as in FP32; a block whose
/// max|x| is below 2⁻¹⁰⁰ is taken as zero (as <see cref="Int8Activation"/> does). Buffers are per thread and reused.
/// </remarks>
internal sealed unsafe class Int16Activation
{
    [ThreadStatic] private static Int16Activation? t_current;

    private short[] _codes = [];
    private float[] _blockScales = [], _halfUnitSums = [];

    /// <summary>Columns of x (the quantized ones are the first 64 · <see cref="Units"/>).</summary>
    public int Cols { get; private set; }
    /// <summary>Whole 64-column units quantized.</summary>
    public int Units { get; private set; }

    /// <summary>[Units, 64]: per unit the int16 values of its even columns then its odd columns.</summary>
    public short* Codes { get; private set; }
    /// <summary>[ceil(Units / 2)]: sx_b of 128-column block b (units 2b and 2b + 1).</summary>
    public float* BlockScales { get; private set; }
    /// <summary>
    /// [Units · 2]: sx_b · Σ x16 over each 32-column half unit (columns 32h..32h+31; the integer sum is exact, the product
    /// rounded once): what a weight group's zero point multiplies.
    /// </summary>
    public float* HalfUnitSums { get; private set; }

    /// <summary>This thread's instance holding x[k] quantized (valid until this thread's next call).</summary>
    public static Int16Activation Quantize(float* x, int k)
    {
        var a = t_current ??= new Int16Activation();
        a.Fill(x, k);
        return a;
    }

    // Compiled fully optimized at once: it runs before every 8-bit decode GEMV (a Tier0 start would slow the first tokens).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Fill(float* x, int k)
    {
        int units = k / 64, blocks = (units + 1) / 2;
        if (_codes.Length < Math.Max(1, units) * 64)
        {
            _codes = GC.AllocateArray<short>(Math.Max(1, units) * 64, pinned: true);
            _blockScales = GC.AllocateArray<float>(Math.Max(1, blocks), pinned: true);
            _halfUnitSums = GC.AllocateArray<float>(Math.Max(1, units) * 2, pinned: true);
        }
        Cols = k;
        Units = units;
        Codes = (short*)Unsafe.AsPointer(ref _codes[0]);
        BlockScales = (float*)Unsafe.AsPointer(ref _blockScales[0]);
        HalfUnitSums = (float*)Unsafe.AsPointer(ref _halfUnitSums[0]);
        for (int b = 0; b < blocks; b++)
        {
            int first = 2 * b, count = Math.Min(2, units - first);
            float* src = x + 128 * b;
            // vmaxps returns its second operand when either is NaN, so NaN is detected apart: finite · 0 = 0, NaN/∞ · 0 = NaN.
            var amax = Vector512<float>.Zero;
            var nonFinite = Vector512<float>.Zero;
            for (int i = 0; i < 4 * count; i++)
            {
                var v = Vector512.Load(src + 16 * i);
                amax = Avx512F.Max(amax, Vector512.Abs(v));
                nonFinite += v * 0f;
            }
            float max = Int8Activation.MaxAcross(amax);
            bool bad = !Vector512.EqualsAll(nonFinite, nonFinite);
            if (bad || !(max >= Int8Activation.TinyBlock))
            {
                BlockScales[b] = bad ? float.NaN : 0f;
                new Span<short>(Codes + 64 * first, 64 * count).Clear();
                new Span<float>(HalfUnitSums + 2 * first, 2 * count).Fill(bad ? float.NaN : 0f);
                continue;
            }
            float inverse = 32767f / max, scale = max / 32767f;
            BlockScales[b] = scale;
            for (int u = first; u < first + count; u++) QuantizeUnit(x + 64 * u, inverse, scale, Codes + 64 * u, HalfUnitSums + 2 * u);
        }
    }

    // 64 columns → [32 even, 32 odd] int16, and the two half units' scaled sums.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void QuantizeUnit(float* src, float inverse, float scale, short* dst, float* halfSums)
    {
        // vcvtps2dq rounds to nearest even (the default MXCSR mode); |x · inverse| ≤ 32767.
        var q0 = Avx512F.ConvertToVector512Int32(Vector512.Load(src) * inverse);
        var q1 = Avx512F.ConvertToVector512Int32(Vector512.Load(src + 16) * inverse);
        var q2 = Avx512F.ConvertToVector512Int32(Vector512.Load(src + 32) * inverse);
        var q3 = Avx512F.ConvertToVector512Int32(Vector512.Load(src + 48) * inverse);
        // Columns 0–31 and 32–63 as int16, then the even and odd words of the 64.
        var lo = Vector512.Create(Avx512F.ConvertToVector256Int16(q0), Avx512F.ConvertToVector256Int16(q1));
        var hi = Vector512.Create(Avx512F.ConvertToVector256Int16(q2), Avx512F.ConvertToVector256Int16(q3));
        Avx512BW.PermuteVar32x16x2(lo, EvenWords, hi).Store(dst);
        Avx512BW.PermuteVar32x16x2(lo, EvenWords + Vector512<short>.One, hi).Store(dst + 32);
        // |sums| ≤ 32 · 32767: exact in int32 and in FP32.
        halfSums[0] = scale * Vector512.Sum(q0 + q1);
        halfSums[1] = scale * Vector512.Sum(q2 + q3);
    }

    // Word indices 0, 2, …, 62 into the 64 words of (lo, hi) (a constant the JIT embeds).
    private static Vector512<short> EvenWords => Vector512.Create(
        (short)0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62);
}
