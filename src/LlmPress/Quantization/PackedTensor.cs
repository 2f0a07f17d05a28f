using LlmPress.IO;
using LlmPress.Numerics;

namespace LlmPress.Quantization;

/// <summary>
/// One array of a <see cref="PackedWeight"/>, stored in a checkpoint as "&lt;module&gt;.&lt;Suffix&gt;" (e.g.
/// "model.layers.0.mlp.down_proj.qweight"): raw little-endian elements, row-major, outermost dimension first.
/// FP8 and E8M0 scales are U8 here (DType has no FP8); an exporter relabels them (e.g. F8_E4M3) where a target wants it.
/// </summary>
/// <param name="Suffix">"qweight", "scales", "qzeros", "global_scale" or "grid".</param>
/// <param name="DType">Element type.</param>
/// <param name="Shape">Dimensions.</param>
/// <param name="Data">product(Shape) × SizeOf(DType) bytes; shared, not copied.</param>
public sealed record PackedTensor(string Suffix, DType DType, long[] Shape, byte[] Data)
{
    /// <summary>This tensor named "<paramref name="modulePrefix"/>.Suffix" for <see cref="SafeTensorsWriter"/>.</summary>
    public TensorToWrite ToTensorToWrite(string modulePrefix) => new($"{modulePrefix}.{Suffix}", DType, Shape, Data);
}

/// <summary>Expected suffix, dtype and shape of one packed tensor.</summary>
internal readonly record struct TensorLayout(string Suffix, DType DType, long[] Shape)
{
    public long ByteLength
    {
        get
        {
            long n = DTypeInfo.SizeOf(DType);
            foreach (long d in Shape) n *= d;
            return n;
        }
    }
}
