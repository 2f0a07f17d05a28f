namespace LlmPress.Gguf;

/// <summary>
/// A tensor for <see cref="GgufWriter"/>: its GGUF name, type, row-major shape (outermost first; the writer stores it
/// reversed as ne[]) and a function producing its bytes, called once while the file is written so that a big model
/// is converted one tensor at a time.
/// </summary>
/// <param name="Name">GGUF name, under 64 bytes.</param>
/// <param name="Type">ggml type.</param>
/// <param name="Shape">Dimensions, outermost first (1 to 4); the last is a multiple of the type's block size.</param>
/// <param name="GetData">Returns exactly <see cref="ByteLength"/> bytes.</param>
public sealed record GgufTensorToWrite(string Name, GgmlType Type, long[] Shape, Func<ReadOnlyMemory<byte>> GetData)
{
    /// <summary>Bytes the tensor occupies: rows × whole blocks per row × block bytes.</summary>
    /// <exception cref="ArgumentException">The innermost dimension is not whole blocks.</exception>
    public long ByteLength
    {
        get
        {
            long inner = Shape[^1], rows = 1;
            for (int i = 0; i < Shape.Length - 1; i++) rows *= Shape[i];
            return (GgmlTypeInfo.RowBytes(Type, inner)
                ?? throw new ArgumentException($"{Name}: {GgmlTypeInfo.Name(Type)} needs the innermost dimension {inner} to be a multiple of {GgmlTypeInfo.BlockSize(Type)}."))
                * rows;
        }
    }
}
