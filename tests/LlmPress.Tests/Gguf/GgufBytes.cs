using System.Text;

namespace LlmPress.Tests.Gguf;

/// <summary>
/// Writes GGUF bytes field by field, independently of GgufWriter, so tests can build valid files from the spec
/// (docs/gguf.md) and break any single field.
/// </summary>
internal sealed class GgufBytes
{
    private readonly MemoryStream _stream = new();
    private readonly BinaryWriter _w;

    public GgufBytes() => _w = new BinaryWriter(_stream, Encoding.UTF8, leaveOpen: true);

    public long Position => _stream.Position;

    public GgufBytes U8(byte v) { _w.Write(v); return this; }
    public GgufBytes U32(uint v) { _w.Write(v); return this; }
    public GgufBytes I32(int v) { _w.Write(v); return this; }
    public GgufBytes U64(ulong v) { _w.Write(v); return this; }
    public GgufBytes F32(float v) { _w.Write(v); return this; }
    public GgufBytes Raw(byte[] bytes) { _w.Write(bytes); return this; }

    public GgufBytes Str(string s)
    {
        byte[] b = Encoding.UTF8.GetBytes(s);
        U64((ulong)b.Length);
        return Raw(b);
    }

    public GgufBytes Header(uint version, ulong tensors, ulong kvs) => U32(0x46554747).U32(version).U64(tensors).U64(kvs);

    /// <summary>A tensor info: name, dims given innermost first (ne), ggml type id, offset.</summary>
    public GgufBytes TensorInfo(string name, ulong[] ne, uint type, ulong offset)
    {
        Str(name).U32((uint)ne.Length);
        foreach (ulong n in ne) U64(n);
        return U32(type).U64(offset);
    }

    /// <summary>Zero bytes up to a multiple of <paramref name="alignment"/>.</summary>
    public GgufBytes Align(int alignment = 32)
    {
        while (_stream.Position % alignment != 0) _w.Write((byte)0);
        return this;
    }

    public byte[] ToArray()
    {
        _w.Flush();
        return _stream.ToArray();
    }

    /// <summary>A valid file: one string and one uint32 key, an F32 [2, 4] tensor and a Q8_0 [1, 32] tensor.</summary>
    public static byte[] Valid()
    {
        var b = new GgufBytes().Header(3, 2, 2);
        b.Str("general.architecture").U32(8).Str("llama");
        b.Str("answer").U32(4).U32(42);
        b.TensorInfo("a", [4, 2], 0, 0);
        b.TensorInfo("b", [32], 8, 32);
        b.Align();
        for (int i = 0; i < 8; i++) b.F32(i);
        b.Align();
        b.Raw([0x00, 0x3C]); // d = 1.0 (FP16)
        for (int i = 0; i < 32; i++) b.U8((byte)(sbyte)(i - 16));
        return b.ToArray();
    }
}
