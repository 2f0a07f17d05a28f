using System.Text;
using LlmPress.IO;

namespace LlmPress.Gguf;

/// <summary>
/// Writes GGUF version 3 files: header, metadata, tensor infos, then the data section, every tensor's offset aligned
/// to <see cref="GgufFile.DefaultAlignment"/> (general.alignment is written only when another alignment is asked
/// for). Atomic (<see cref="AtomicFile"/>): a failure leaves no partial file.
/// </summary>
public static class GgufWriter
{
    /// <summary>Writes <paramref name="path"/>.</summary>
    /// <param name="path">Target file.</param>
    /// <param name="metadata">Key/value pairs in the order to write them (keys unique).</param>
    /// <param name="tensors">Tensors in the order to write them (names unique).</param>
    /// <param name="progress">Called after each tensor with (tensors written, total).</param>
    /// <exception cref="ArgumentException">Duplicate keys or names, a name of 64 bytes or more, a bad shape, or data of the wrong length.</exception>
    public static void Write(string path, IReadOnlyList<KeyValuePair<string, GgufValue>> metadata, IReadOnlyList<GgufTensorToWrite> tensors,
        Action<int, int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(tensors);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, _) in metadata)
            if (!keys.Add(key)) throw new ArgumentException($"{path}: metadata key '{key}' given twice.", nameof(metadata));
        var names = new HashSet<string>(StringComparer.Ordinal);
        var offsets = new long[tensors.Count];
        long offset = 0;
        for (int i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            if (!names.Add(t.Name)) throw new ArgumentException($"{path}: tensor '{t.Name}' given twice.", nameof(tensors));
            if (Encoding.UTF8.GetByteCount(t.Name) >= GgufFile.MaxNameBytes)
                throw new ArgumentException($"{path}: tensor name '{t.Name}' is {GgufFile.MaxNameBytes} bytes or longer.", nameof(tensors));
            if (t.Shape.Length is < 1 or > 4 || Array.Exists(t.Shape, d => d <= 0))
                throw new ArgumentException($"{path}: tensor '{t.Name}' shape [{string.Join(", ", t.Shape)}] must have 1 to 4 positive dimensions.", nameof(tensors));
            offsets[i] = offset;
            offset = Align(offset + t.ByteLength);
        }

        AtomicFile.Write(path, stream =>
        {
            var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            w.Write(GgufFile.Magic);
            w.Write(3u);
            w.Write((ulong)tensors.Count);
            w.Write((ulong)metadata.Count);
            foreach (var (key, value) in metadata)
            {
                WriteString(w, key);
                w.Write((uint)value.Type);
                if (value.Type == GgufValueType.Array)
                {
                    w.Write((uint)value.ElementType);
                    var array = (Array)value.Value;
                    w.Write((ulong)array.Length);
                    foreach (object element in array) WriteScalar(w, value.ElementType, element);
                }
                else
                {
                    WriteScalar(w, value.Type, value.Value);
                }
            }
            for (int i = 0; i < tensors.Count; i++)
            {
                var t = tensors[i];
                WriteString(w, t.Name);
                w.Write((uint)t.Shape.Length);
                for (int d = t.Shape.Length - 1; d >= 0; d--) w.Write((ulong)t.Shape[d]); // ne[0] is the innermost dimension
                w.Write((uint)t.Type);
                w.Write((ulong)offsets[i]);
            }
            w.Flush();
            Pad(stream);
            long dataStart = stream.Position;
            for (int i = 0; i < tensors.Count; i++)
            {
                var t = tensors[i];
                var data = t.GetData();
                if (data.Length != t.ByteLength)
                    throw new ArgumentException($"{path}: tensor '{t.Name}' data has {data.Length} bytes, expected {t.ByteLength}.", nameof(tensors));
                if (stream.Position - dataStart != offsets[i]) throw new InvalidOperationException("GGUF writer offset bookkeeping is wrong.");
                stream.Write(data.Span);
                Pad(stream);
                progress?.Invoke(i + 1, tensors.Count);
            }
        });
    }

    private static long Align(long offset) => (offset + GgufFile.DefaultAlignment - 1) / GgufFile.DefaultAlignment * GgufFile.DefaultAlignment;

    private static void Pad(Stream stream)
    {
        long pad = Align(stream.Position) - stream.Position;
        Span<byte> zeros = stackalloc byte[GgufFile.DefaultAlignment];
        zeros.Clear();
        stream.Write(zeros[..(int)pad]);
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteScalar(BinaryWriter w, GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.UInt8: w.Write((byte)value); break;
            case GgufValueType.Int8: w.Write((sbyte)value); break;
            case GgufValueType.UInt16: w.Write((ushort)value); break;
            case GgufValueType.Int16: w.Write((short)value); break;
            case GgufValueType.UInt32: w.Write((uint)value); break;
            case GgufValueType.Int32: w.Write((int)value); break;
            case GgufValueType.Float32: w.Write((float)value); break;
            case GgufValueType.Bool: w.Write((bool)value ? (byte)1 : (byte)0); break;
            case GgufValueType.String: WriteString(w, (string)value); break;
            case GgufValueType.UInt64: w.Write((ulong)value); break;
            case GgufValueType.Int64: w.Write((long)value); break;
            case GgufValueType.Float64: w.Write((double)value); break;
            default: throw new ArgumentException($"Cannot write a GGUF {type} as a scalar.", nameof(type));
        }
    }
}
