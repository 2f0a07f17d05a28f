using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using LlmPress.Quantization;

namespace LlmPress.Numerics.Kernels;

/// <summary>
/// Scale code bytes → FP32 scales in registers. E8M0 is its code shifted into the exponent field, 16 at a time.
/// E4M3 is looked up, 64 codes at a time, in the matrix's table of correctly rounded quotients E4M3(m) ÷ divisor
/// (<see cref="ScaleCodeTable"/>): one two-register byte permute (vpermi2b, 7-bit index) per byte of the FP32 result
/// over that byte's plane of the 128 magnitudes, the code's sign bit XORed into the top byte (division is
/// sign-symmetric: table[0x80 | m] = −table[m] bit for bit), then two rounds of byte/word unpacks interleave the four
/// planes into floats. The unpacks work within 128-bit lanes, so the codes are first permuted into the order that
/// makes the four results come out in sequence. Without VBMI, E4M3 is decoded in registers and divided.
/// </summary>
/// <remarks>
/// Why: NVFP4 has a scale per 16 weights, and a decode step turns ~6.6M of them into floats for a 135M model. Dividing
/// in registers took 0.12–0.14 ns per scale, bound by vdivps and by the ~15 512-bit operations per 16 scales (this Zen
/// issues two per cycle); the byte-plane lookup takes ~19 per 64. A gather from the table was ~2.5 cycles per scale,
/// and the 128-entry float table in eight registers (four vpermt2ps, three blends) was slower than dividing.
/// </remarks>
internal static unsafe class ScaleCodeDecoder
{
    /// <summary>The scalar codec: the FP32 scale of one code.</summary>
    public static float Decode(byte code, ScaleCoding coding, float divisor) =>
        coding == ScaleCoding.E8M0 ? E8M0.Decode(code) : Fp8E4M3.Decode(code) / divisor;

    /// <summary>destination[i] = the scale of codes[i]. Codes that decode to NaN (E8M0 0xFF, E4M3 0x7F/0xFF) must not occur.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Decode(ReadOnlySpan<byte> codes, ScaleCodeTable table, Span<float> destination)
    {
        if (destination.Length < codes.Length) throw new ArgumentException("destination is shorter than codes.", nameof(destination));
        int i = 0;
        fixed (byte* c = codes, planes = table.BytePlanes)
        fixed (float* d = destination, values = table.Values)
        {
            int count = codes.Length;
            if (table.Coding == ScaleCoding.E8M0)
            {
                if (Avx512F.IsSupported) i = ShiftE8M0(c, count, d);
            }
            else
            {
                if (Avx512Vbmi.IsSupported) i = LookUpE4M3(c, count, planes, d);
                if (Avx512F.IsSupported) i = DivideE4M3(c, i, count, table.Divisor, d);
            }
            for (; i < count; i++) d[i] = values[c[i]];
        }
    }

    /// <summary>The E8M0 codes [0, 16·⌊count/16⌋) shifted into the exponent field; returns how many were done.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int ShiftE8M0(byte* c, int count, float* d)
    {
        int i = 0;
        for (; i + 16 <= count; i += 16)
        {
            var x = Avx512F.ConvertToVector512Int32(Vector128.Load(c + i));
            var bits = Avx512F.ShiftLeftLogical(x, 23);
            Vector512.ConditionalSelect(Vector512.Equals(x, Vector512<int>.Zero), Vector512.Create(0x0040_0000), bits) // 2^−127
                .AsSingle().Store(d + i);
        }
        return i;
    }

    /// <summary>
    /// The E4M3 codes from <paramref name="i"/> on, 16 at a time, decoded in registers and divided (without VBMI, and
    /// the last 16–63 codes with it); returns where it stopped.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int DivideE4M3(byte* c, int i, int count, float divisor, float* d)
    {
        var divisors = Vector512.Create(divisor);
        for (; i + 16 <= count; i += 16)
        {
            // Its 7 magnitude bits under the mantissa with the exponent rebiased by 120, or for exponent 0 m·2⁻⁹.
            var x = Avx512F.ConvertToVector512Int32(Vector128.Load(c + i));
            var magnitude = x & Vector512.Create(0x7F);
            var normal = Avx512F.ShiftLeftLogical(magnitude, 20) + Vector512.Create(120 << 23);
            var subnormal = (Avx512F.ConvertToVector512Single(magnitude) * Vector512.Create(1f / 512)).AsInt32();
            var value = Vector512.ConditionalSelect(Vector512.LessThan(magnitude, Vector512.Create(8)), subnormal, normal)
                | Avx512F.ShiftLeftLogical(x & Vector512.Create(0x80), 24);
            (value.AsSingle() / divisors).Store(d + i);
        }
        return i;
    }

    /// <summary>The E4M3 codes [0, 64·⌊count/64⌋) through the byte planes; returns how many were done.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int LookUpE4M3(byte* c, int count, byte* planes, float* d)
    {
        Vector512<byte> b0Low = Vector512.Load(planes), b0High = Vector512.Load(planes + 64);
        Vector512<byte> b1Low = Vector512.Load(planes + 128), b1High = Vector512.Load(planes + 192);
        Vector512<byte> b2Low = Vector512.Load(planes + 256), b2High = Vector512.Load(planes + 320);
        Vector512<byte> b3Low = Vector512.Load(planes + 384), b3High = Vector512.Load(planes + 448);
        // Position 16ℓ + 4s + j of the permuted codes (ℓ: 128-bit lane, j < 4) holds code 16s + 4ℓ + j: after the
        // unpacks, result s has codes 16s .. 16s + 15 in order (lane ℓ's four floats come from positions 16ℓ + 4s + j).
        var order = Vector512.Create(
            (byte)0, 1, 2, 3, 16, 17, 18, 19, 32, 33, 34, 35, 48, 49, 50, 51,
            4, 5, 6, 7, 20, 21, 22, 23, 36, 37, 38, 39, 52, 53, 54, 55,
            8, 9, 10, 11, 24, 25, 26, 27, 40, 41, 42, 43, 56, 57, 58, 59,
            12, 13, 14, 15, 28, 29, 30, 31, 44, 45, 46, 47, 60, 61, 62, 63);
        var sign = Vector512.Create((byte)0x80);
        int i = 0;
        for (; i + 64 <= count; i += 64)
        {
            var x = Avx512Vbmi.PermuteVar64x8(Vector512.Load(c + i), order);
            var p0 = Avx512Vbmi.PermuteVar64x8x2(b0Low, x, b0High); // the index's bit 7 is ignored
            var p1 = Avx512Vbmi.PermuteVar64x8x2(b1Low, x, b1High);
            var p2 = Avx512Vbmi.PermuteVar64x8x2(b2Low, x, b2High);
            var p3 = Avx512Vbmi.PermuteVar64x8x2(b3Low, x, b3High) ^ (x & sign);
            var low01 = Avx512BW.UnpackLow(p0, p1).AsUInt16();
            var high01 = Avx512BW.UnpackHigh(p0, p1).AsUInt16();
            var low23 = Avx512BW.UnpackLow(p2, p3).AsUInt16();
            var high23 = Avx512BW.UnpackHigh(p2, p3).AsUInt16();
            Avx512BW.UnpackLow(low01, low23).AsSingle().Store(d + i);
            Avx512BW.UnpackHigh(low01, low23).AsSingle().Store(d + i + 16);
            Avx512BW.UnpackLow(high01, high23).AsSingle().Store(d + i + 32);
            Avx512BW.UnpackHigh(high01, high23).AsSingle().Store(d + i + 48);
        }
        return i;
    }
}
