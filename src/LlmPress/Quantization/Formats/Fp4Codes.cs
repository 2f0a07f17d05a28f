using System.Runtime.CompilerServices;

namespace LlmPress.Quantization;

/// <summary>32 E2M1 codes packed two per byte (element 2j in the low nibble of byte j).</summary>
[InlineArray(16)]
public struct Fp4Codes32
{
    private byte _element0;
}

/// <summary>16 E2M1 codes packed two per byte (element 2j in the low nibble of byte j).</summary>
[InlineArray(8)]
public struct Fp4Codes16
{
    private byte _element0;
}
