using LlmPress.Numerics;

namespace LlmPress.IO;

/// <summary>
/// Where one tensor lives: its element type, its shape (row-major, outermost first) and the absolute byte range in
/// <paramref name="FilePath"/> that holds its little-endian elements.
/// </summary>
/// <param name="Name">Checkpoint name, e.g. "model.layers.0.mlp.up_proj.weight".</param>
/// <param name="DType">Stored element type.</param>
/// <param name="Shape">Dimensions, outermost first; empty for a scalar. Treat as read-only.</param>
/// <param name="DataOffset">Absolute byte offset of the first element in the file (header included).</param>
/// <param name="ByteLength">Bytes of data: <see cref="ElementCount"/> × the dtype size.</param>
/// <param name="FilePath">The .safetensors file holding the data.</param>
public sealed record TensorInfo(string Name, DType DType, long[] Shape, long DataOffset, long ByteLength, string FilePath)
{
    /// <summary>Product of <see cref="Shape"/> (1 for a scalar, 0 when any dimension is 0).</summary>
    /// <exception cref="OverflowException">The product does not fit in a long.</exception>
    public long ElementCount { get; } = ComputeElementCount(Shape);

    /// <summary>Shape as text, e.g. "[512, 64]" ("[]" for a scalar).</summary>
    public string ShapeText => FormatShape(Shape);

    /// <summary>Value equality, with the shape compared element by element (a record would compare the array reference).</summary>
    public bool Equals(TensorInfo? other) =>
        other is not null
        && Name == other.Name
        && DType == other.DType
        && Shape.AsSpan().SequenceEqual(other.Shape)
        && DataOffset == other.DataOffset
        && ByteLength == other.ByteLength
        && FilePath == other.FilePath;

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Name);
        hash.Add(DType);
        foreach (long dim in Shape) hash.Add(dim);
        hash.Add(DataOffset);
        hash.Add(ByteLength);
        hash.Add(FilePath);
        return hash.ToHashCode();
    }

    public override string ToString() =>
        $"{Name} {DTypeInfo.SafeTensorsName(DType)} {ShapeText} at byte {DataOffset} ({ByteLength} bytes) in {FilePath}";

    internal static long ComputeElementCount(ReadOnlySpan<long> shape)
    {
        long count = 1;
        foreach (long dim in shape) count = checked(count * dim);
        return count;
    }

    internal static string FormatShape(ReadOnlySpan<long> shape)
    {
        var text = new System.Text.StringBuilder("[");
        for (int i = 0; i < shape.Length; i++)
        {
            if (i > 0) text.Append(", ");
            text.Append(shape[i]);
        }
        return text.Append(']').ToString();
    }
}
