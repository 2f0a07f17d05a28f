using LlmPress.IO;

namespace LlmPress.Gguf;

/// <summary>
/// One tensor of a GGUF file. <see cref="Shape"/> is row-major, outermost first (as in safetensors and PyTorch), i.e.
/// GGUF's ne[] reversed: a linear weight [out, in] has ne = [in, out].
/// </summary>
/// <param name="Name">GGUF name, e.g. "blk.0.attn_q.weight".</param>
/// <param name="Type">Element / block type.</param>
/// <param name="Shape">Dimensions, outermost first; the last one (ne[0]) is a multiple of the type's block size.</param>
/// <param name="DataOffset">Absolute byte offset of the tensor's data in the file.</param>
/// <param name="ByteLength">Bytes of data.</param>
public sealed record GgufTensorInfo(string Name, GgmlType Type, long[] Shape, long DataOffset, long ByteLength)
{
    /// <summary>Product of the dimensions.</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (long d in Shape) n *= d;
            return n;
        }
    }

    /// <summary>Shape as text, e.g. "[512, 64]".</summary>
    public string ShapeText => TensorInfo.FormatShape(Shape);
}
