using System.Runtime.InteropServices;

namespace LlmPress.Quantization;

/// <summary>
/// One NVFP4 block: 16 E2M1 elements sharing an FP8 E4M3 scale, 9 bytes (4.5 bits/weight), plus the tensor's FP32
/// global scale g: x_i ≈ E2M1(code_i) · E4M3(Scale) / g. The blittable unit of <see cref="Nvfp4Format"/>.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public struct Nvfp4Block
{
    /// <summary>Elements per block.</summary>
    public const int Length = 16;

    /// <summary>FP8 E4M3 scale code.</summary>
    public byte Scale;

    /// <summary>The 16 codes, two per byte.</summary>
    public Fp4Codes16 Codes;

    /// <summary>
    /// Reference quantization of up to 16 values (a shorter <paramref name="x"/> is zero-padded virtually) with the
    /// tensor's <paramref name="globalScale"/>: Scale = E4M3(amax/6 · g), 0 replaced by 1.0.
    /// </summary>
    public static Nvfp4Block QuantizeReference(ReadOnlySpan<float> x, float globalScale, ScaleSearch search = ScaleSearch.MinMax)
    {
        if (x.Length > Length) throw new ArgumentException($"An NVFP4 block holds at most {Length} values, not {x.Length}.", nameof(x));
        Nvfp4Format.CheckGlobalScale(globalScale);
        var block = new Nvfp4Block { Scale = Nvfp4Format.ComputeScale(x, globalScale, search, vectorized: false) };
        Span<byte> codes = stackalloc byte[Length];
        codes.Clear();
        Fp4Group.Quantize(x, Nvfp4Format.EffectiveScale(block.Scale, globalScale), vectorized: false, codes);
        Fp4E2M1.Pack(codes, block.Codes);
        return block;
    }

    /// <summary>Writes the first destination.Length (≤ 16) values.</summary>
    public readonly void Dequantize(float globalScale, Span<float> destination)
    {
        if (destination.Length > Length) throw new ArgumentException($"An NVFP4 block holds {Length} values.", nameof(destination));
        float scale = Nvfp4Format.EffectiveScale(Scale, globalScale);
        ReadOnlySpan<byte> packed = Codes;
        for (int i = 0; i < destination.Length; i++)
            destination[i] = Fp4E2M1.Decode(packed[i >> 1] >> ((i & 1) * 4)) * scale;
    }
}
