using LlmPress.IO;
using LlmPress.Numerics;

namespace LlmPress.Quantization.Pipeline;

/// <summary>
/// How a <see cref="CompressedLinear"/> is kept in a safetensors file by the run journal and the level database: a
/// packed linear as its packed tensors "&lt;weight&gt;.&lt;suffix&gt;" (qweight, scales, …), a dense one as the tensor
/// "&lt;weight&gt;" in its stored dtype (its values are exact in it). Besides the tensors, a reader needs the linear's
/// shape and its format name (<see cref="FormatName"/>: the packed format, or "dense-f32" / "dense-bf16" / "dense-f16").
/// </summary>
internal static class CompressedLinearTensors
{
    private const string DensePrefix = "dense-";

    /// <summary>The format name recorded beside the tensors.</summary>
    public static string FormatName(CompressedLinear linear) =>
        linear.Packed?.Format.Name ?? DensePrefix + DTypeInfo.SafeTensorsName(linear.StoredType).ToLowerInvariant();

    /// <summary>Adds the tensors of <paramref name="linear"/>, named after <paramref name="weightName"/>, to <paramref name="tensors"/>.</summary>
    public static void Add(CompressedLinear linear, string weightName, List<TensorToWrite> tensors)
    {
        if (linear.Packed is { } packed)
            foreach (var t in packed.Tensors)
                tensors.Add(t.ToTensorToWrite(weightName));
        else
            tensors.Add(new TensorToWrite(weightName, linear.StoredType, [linear.Rows, linear.Cols],
                Sparsity.StoredValues.ToBytes(linear.StoredType, linear.Weight)));
    }

    /// <summary>Bytes <see cref="Add"/> writes for <paramref name="linear"/> (tensor data, without the file header).</summary>
    public static long DataBytes(CompressedLinear linear) =>
        linear.Packed?.StorageBytes ?? (long)linear.Rows * linear.Cols * DTypeInfo.SizeOf(linear.StoredType);

    /// <summary>Reads back the linear <paramref name="name"/> [rows, cols] that <see cref="Add"/> wrote as <paramref name="weightName"/>.</summary>
    /// <exception cref="InvalidDataException">The tensors are missing or do not fit the format and shape (the message names the tensor).</exception>
    public static CompressedLinear Read(SafeTensorsFile file, string weightName, string name, int rows, int cols, string format)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (format.StartsWith(DensePrefix, StringComparison.Ordinal))
        {
            if (!DTypeInfo.TryParseSafeTensorsName(format[DensePrefix.Length..].ToUpperInvariant(), out var type)
                || !file.TryGetTensor(weightName, out var info) || info.DType != type
                || info.ByteLength != (long)rows * cols * DTypeInfo.SizeOf(type))
                throw new InvalidDataException($"no {format} tensor {weightName} of [{rows}, {cols}]");
            var weight = new float[(long)rows * cols];
            FloatConversion.ToSingle(type, file.GetData(weightName).Span, weight);
            return CompressedLinear.FromDense(name, weight, rows, cols, type);
        }
        if (!QuantFormat.TryParse(format, out var quantFormat)) throw new InvalidDataException($"unknown format {format} of {name}");
        string prefix = weightName + ".";
        var tensors = new List<PackedTensor>();
        foreach (var t in file.Tensors)
            if (t.Name.StartsWith(prefix, StringComparison.Ordinal))
                tensors.Add(new PackedTensor(t.Name[prefix.Length..], t.DType, t.Shape, file.GetData(t.Name).ToArray()));
        return CompressedLinear.FromPacked(name, PackedWeight.FromTensors(quantFormat, rows, cols, tensors));
    }
}
