using System.Runtime.InteropServices;

namespace LlmPress.Quantization;

/// <summary>
/// One MXFP4 block (OCP MX v1.0): 32 E2M1 elements sharing an E8M0 scale, 17 bytes (4.25 bits/weight):
/// x_i ≈ E2M1(code_i) · 2^(Scale − 127). The blittable unit of <see cref="Mxfp4Format"/>; the packed matrix stores the
/// same bytes as two planes (scales, qweight).
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct Mxfp4Block
{
    /// <summary>Elements per block.</summary>
    public const int Length = 32;

    /// <summary>E8M0 scale code.</summary>
    public byte Scale;

    /// <summary>The 32 codes, two per byte.</summary>
    public Fp4Codes32 Codes;

    /// <summary>
    /// Reference quantization of up to 32 values; a shorter <paramref name="x"/> is zero-padded virtually (padding
    /// codes are 0 and never read). Scale = 2^(floor(log2 amax) − 2) (OCP rule), clamped to E8M0's range.
    /// </summary>
    public static Mxfp4Block QuantizeReference(ReadOnlySpan<float> x, ScaleSearch search = ScaleSearch.MinMax)
    {
        if (x.Length > Length) throw new ArgumentException($"An MXFP4 block holds at most {Length} values, not {x.Length}.", nameof(x));
        var block = new Mxfp4Block { Scale = Mxfp4Format.ComputeScale(x, search, vectorized: false) };
        Span<byte> codes = stackalloc byte[Length];
        codes.Clear();
        Fp4Group.Quantize(x, E8M0.Decode(block.Scale), vectorized: false, codes);
        Fp4E2M1.Pack(codes, block.Codes);
        return block;
    }

    /// <summary>Writes the first destination.Length (≤ 32) values.</summary>
    public readonly void Dequantize(Span<float> destination)
    {
        if (destination.Length > Length) throw new ArgumentException($"An MXFP4 block holds {Length} values.", nameof(destination));
        float scale = E8M0.Decode(Scale);
        ReadOnlySpan<byte> packed = Codes;
        for (int i = 0; i < destination.Length; i++)
            destination[i] = Fp4E2M1.Decode(packed[i >> 1] >> ((i & 1) * 4)) * scale;
    }
}
