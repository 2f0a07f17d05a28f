using System.Buffers.Binary;
using System.Text;
using LlmPress.IO;

namespace LlmPress.Gguf;

/// <summary>
/// One GGUF file (versions 2 and 3), memory-mapped read-only and validated on open: magic, version, counts against the
/// file size, string and array lengths, value types, tensor names (unique, under 64 bytes), dimensions (1 to 4,
/// positive, ne[0] whole blocks), tensor types, offsets (aligned, inside the data section, not overlapping).
/// Every problem is an <see cref="InvalidDataException"/> naming the file, the field and the byte offset.
/// Tensor data is never copied: <see cref="GetData"/> returns a view into the mapping. Thread-safe for reading.
/// </summary>
/// <remarks>Memory returned by <see cref="GetData"/> must not be used after <see cref="Dispose"/>.</remarks>
public sealed class GgufFile : IDisposable
{
    /// <summary>"GGUF" read as a little-endian uint32.</summary>
    public const uint Magic = 0x46554747;

    /// <summary>Alignment of tensor data when general.alignment is absent (GGUF_DEFAULT_ALIGNMENT).</summary>
    public const int DefaultAlignment = 32;

    /// <summary>Longest tensor name + 1 (GGML_MAX_NAME); llama.cpp rejects longer names.</summary>
    public const int MaxNameBytes = 64;

    private readonly MappedFile _file;
    private readonly Dictionary<string, GgufTensorInfo> _byName;

    private GgufFile(string path, MappedFile file, uint version, Dictionary<string, GgufValue> metadata, List<string> keys,
        GgufTensorInfo[] tensors, int alignment, long dataStart)
    {
        Path = path;
        _file = file;
        Version = version;
        Metadata = metadata;
        MetadataKeys = keys;
        Tensors = tensors;
        Alignment = alignment;
        DataStart = dataStart;
        _byName = new Dictionary<string, GgufTensorInfo>(tensors.Length, StringComparer.Ordinal);
        foreach (var t in tensors) _byName.Add(t.Name, t);
    }

    /// <summary>Absolute path of the file.</summary>
    public string Path { get; }

    /// <summary>Format version (2 or 3).</summary>
    public uint Version { get; }

    /// <summary>Metadata by key.</summary>
    public IReadOnlyDictionary<string, GgufValue> Metadata { get; }

    /// <summary>Metadata keys in file order.</summary>
    public IReadOnlyList<string> MetadataKeys { get; }

    /// <summary>Tensors in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    /// <summary>Alignment of the data section and of every tensor's offset.</summary>
    public int Alignment { get; }

    /// <summary>Absolute offset of the data section.</summary>
    public long DataStart { get; }

    /// <summary>Size of the file in bytes.</summary>
    public long Length => _file.Length;

    /// <summary>Maps and validates <paramref name="path"/>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a valid GGUF file (the message says where and why).</exception>
    public static GgufFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = System.IO.Path.GetFullPath(path);
        if (Directory.Exists(fullPath)) throw new InvalidDataException($"{fullPath}: is a directory, not a GGUF file.");
        if (!File.Exists(fullPath)) throw new FileNotFoundException($"{fullPath}: file not found.", fullPath);
        var stream = new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.RandomAccess);
        MappedFile? file = null;
        try
        {
            if (stream.Length < 24)
                throw new InvalidDataException($"{fullPath}: {stream.Length} bytes, too short for a GGUF header (24 bytes); the file is truncated or not GGUF.");
            file = MappedFile.Map(stream);
            return new Parser(fullPath, file).Parse();
        }
        catch
        {
            if (file is not null) file.Dispose();
            else stream.Dispose();
            throw;
        }
    }

    public bool TryGetTensor(string name, out GgufTensorInfo info)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _byName.TryGetValue(name, out info!);
    }

    /// <exception cref="InvalidDataException">No tensor has that name.</exception>
    public GgufTensorInfo GetTensor(string name) =>
        TryGetTensor(name, out var info) ? info : throw new InvalidDataException($"{Path}: tensor '{name}' not found.");

    /// <summary>The tensor's raw bytes (blocks as stored), zero-copy.</summary>
    /// <exception cref="NotSupportedException">The tensor is larger than 2 GiB.</exception>
    public ReadOnlyMemory<byte> GetData(GgufTensorInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        if (info.ByteLength > int.MaxValue) throw new NotSupportedException($"{Path}: tensor '{info.Name}' has {info.ByteLength} bytes; tensors over 2 GiB are not supported.");
        return _file.GetMemory(info.DataOffset, (int)info.ByteLength);
    }

    /// <summary>A metadata string, or null when the key is absent.</summary>
    /// <exception cref="InvalidDataException">The key holds something other than a string.</exception>
    public string? GetString(string key)
    {
        if (!Metadata.TryGetValue(key, out var v)) return null;
        return v.AsString() ?? throw new InvalidDataException($"{Path}: metadata '{Show(key)}' is {v.Type}, expected a string.");
    }

    /// <summary>A metadata integer of any width, or null when the key is absent.</summary>
    /// <exception cref="InvalidDataException">The key holds something other than an integer.</exception>
    public long? GetInteger(string key)
    {
        if (!Metadata.TryGetValue(key, out var v)) return null;
        return v.AsInteger() ?? throw new InvalidDataException($"{Path}: metadata '{Show(key)}' is {v.Type}, expected an integer.");
    }

    /// <summary>A metadata number (float or integer), or null when the key is absent.</summary>
    public double? GetDouble(string key)
    {
        if (!Metadata.TryGetValue(key, out var v)) return null;
        return v.AsDouble() ?? throw new InvalidDataException($"{Path}: metadata '{Show(key)}' is {v.Type}, expected a number.");
    }

    /// <summary>A metadata bool, or null when the key is absent.</summary>
    public bool? GetBool(string key)
    {
        if (!Metadata.TryGetValue(key, out var v)) return null;
        return v.Value is bool b ? b : throw new InvalidDataException($"{Path}: metadata '{Show(key)}' is {v.Type}, expected a bool.");
    }

    /// <summary>A metadata array of <typeparamref name="T"/> (e.g. string[], float[], int[]), or null when the key is absent.</summary>
    public T[]? GetArray<T>(string key)
    {
        if (!Metadata.TryGetValue(key, out var v)) return null;
        return v.Value as T[] ?? throw new InvalidDataException(
            $"{Path}: metadata '{key}' is {(v.Type == GgufValueType.Array ? $"an array of {v.ElementType}" : v.Type.ToString())}, expected an array of {typeof(T).Name}.");
    }

    public void Dispose() => _file.Dispose();

    /// <summary>Reads the header with a bounds-checked cursor; every read past the end is a "truncated" error.</summary>
    private sealed class Parser(string path, MappedFile file)
    {
        private long _pos;

        public GgufFile Parse()
        {
            uint magic = ReadUInt32("magic");
            if (magic != Magic)
                Fail(0, "magic", $"starts with 0x{magic:x8}, not \"GGUF\" (0x{Magic:x8}); this is not a GGUF file");
            uint version = ReadUInt32("version");
            if (version is not (2 or 3))
                Fail(4, "version", BinaryPrimitives.ReverseEndianness(version) is 2 or 3
                    ? $"is {BinaryPrimitives.ReverseEndianness(version)} big-endian; LlmPress reads little-endian GGUF only"
                    : $"is {version}; LlmPress reads GGUF versions 2 and 3");
            long tensorCount = ReadCount("tensor_count", minBytesEach: 8 + 4 + 8 + 4 + 8);
            long kvCount = ReadCount("metadata_kv_count", minBytesEach: 8 + 4 + 1);

            var metadata = new Dictionary<string, GgufValue>(StringComparer.Ordinal);
            var keys = new List<string>();
            for (long i = 0; i < kvCount; i++)
            {
                long at = _pos;
                string key = ReadString($"metadata key #{i}");
                if (key.Length == 0) Fail(at, $"metadata key #{i}", "is empty");
                if (!metadata.TryAdd(key, ReadValue(key))) Fail(at, $"metadata key '{Show(key)}'", "appears twice");
                keys.Add(key);
            }

            int alignment = DefaultAlignment;
            if (metadata.TryGetValue("general.alignment", out var a))
            {
                if (a.Value is not uint align || align == 0 || (align & (align - 1)) != 0 || align > 1 << 20)
                    Fail(0, "general.alignment", $"is {a.Type} {a}, expected a uint32 power of two up to 2^20");
                alignment = (int)(uint)a.Value;
            }

            var raw = new (string Name, GgmlType Type, long[] Shape, long Offset, long Bytes, long At)[tensorCount];
            var names = new HashSet<string>(StringComparer.Ordinal);
            for (long i = 0; i < tensorCount; i++)
            {
                long at = _pos;
                string field = $"tensor info #{i}";
                string name = ReadString(field + " name");
                if (Encoding.UTF8.GetByteCount(name) >= MaxNameBytes)
                    Fail(at, field, $"name '{Show(name)}' is {Encoding.UTF8.GetByteCount(name)} bytes; GGUF names are under {MaxNameBytes}");
                if (!names.Add(name)) Fail(at, $"tensor '{Show(name)}'", "appears twice");
                field = $"tensor '{Show(name)}'";
                uint dims = ReadUInt32(field + " n_dims");
                if (dims is < 1 or > 4) Fail(_pos - 4, field, $"has n_dims {dims}; GGUF tensors have 1 to 4 dimensions");
                var ne = new long[dims];
                long elements = 1;
                for (int d = 0; d < dims; d++)
                {
                    ulong n = ReadUInt64($"{field} ne[{d}]");
                    if (n == 0 || n > long.MaxValue) Fail(_pos - 8, field, $"has ne[{d}] = {n}; dimensions must be positive");
                    ne[d] = (long)n;
                    if (elements > long.MaxValue / ne[d]) Fail(_pos - 8, field, "has more elements than fit in 64 bits");
                    elements *= ne[d];
                }
                uint typeId = ReadUInt32(field + " type");
                if (!GgmlTypeInfo.IsSupported(typeId))
                    Fail(_pos - 4, field, $"has ggml type {typeId}, which LlmPress does not support (supported: f32 0, f16 1, q4_0 2, q8_0 8, bf16 30, mxfp4 39)");
                var type = (GgmlType)typeId;
                long rowElements = ne[0];
                if (GgmlTypeInfo.RowBytes(type, rowElements) is not long rowBytes)
                {
                    Fail(_pos - 4, field, $"ne[0] = {ne[0]} is not a multiple of the {GgmlTypeInfo.Name(type)} block size {GgmlTypeInfo.BlockSize(type)}");
                    return null!;
                }
                long rows = elements / rowElements;
                if (rowBytes != 0 && rows > long.MaxValue / rowBytes) Fail(_pos - 4, field, "has more bytes than fit in 64 bits");
                ulong offset = ReadUInt64(field + " offset");
                if (offset % (ulong)alignment != 0) Fail(_pos - 8, field, $"offset {offset} is not a multiple of the alignment {alignment}");
                if (offset > (ulong)file.Length) Fail(_pos - 8, field, $"offset {offset} points past the end of the file ({file.Length} bytes); the file is truncated or corrupt");
                var shape = new long[dims];
                for (int d = 0; d < dims; d++) shape[d] = ne[dims - 1 - d];
                raw[i] = (name, type, shape, (long)offset, rows * rowBytes, at);
            }

            long dataStart = (_pos + alignment - 1) / alignment * alignment;
            if (dataStart > file.Length && tensorCount > 0)
                Fail(_pos, "data section", $"would start at byte {dataStart}, past the end of the file ({file.Length} bytes); the file is truncated");
            long dataLength = Math.Max(0, file.Length - dataStart);

            var tensors = new GgufTensorInfo[tensorCount];
            for (long i = 0; i < tensorCount; i++)
            {
                var t = raw[i];
                if (t.Offset > dataLength || t.Bytes > dataLength - t.Offset)
                    Fail(t.At, $"tensor '{Show(t.Name)}'", $"data [{t.Offset}, {t.Offset + t.Bytes}) of the data section exceed it ({dataLength} bytes from byte {dataStart}); the file is truncated or corrupt");
                tensors[i] = new GgufTensorInfo(t.Name, t.Type, t.Shape, dataStart + t.Offset, t.Bytes);
            }
            // No two tensors may share bytes (ggml lays them out back to back, each padded to the alignment).
            var order = new int[tensorCount];
            for (int i = 0; i < order.Length; i++) order[i] = i;
            Array.Sort(order, (x, y) => tensors[x].DataOffset.CompareTo(tensors[y].DataOffset));
            for (int k = 1; k < order.Length; k++)
            {
                var prev = tensors[order[k - 1]];
                var cur = tensors[order[k]];
                if (cur.DataOffset < prev.DataOffset + prev.ByteLength)
                    Fail(raw[order[k]].At, $"tensor '{Show(cur.Name)}'", $"data at byte {cur.DataOffset} overlap tensor '{Show(prev.Name)}' [{prev.DataOffset}, {prev.DataOffset + prev.ByteLength})");
            }
            return new GgufFile(path, file, version, metadata, keys, tensors, alignment, dataStart);
        }

        private GgufValue ReadValue(string key)
        {
            long at = _pos;
            uint typeId = ReadUInt32($"metadata '{Show(key)}' type");
            if (typeId > (uint)GgufValueType.Float64) Fail(at, $"metadata '{Show(key)}'", $"has value type {typeId}; GGUF value types are 0 to 12");
            var type = (GgufValueType)typeId;
            if (type != GgufValueType.Array) return GgufValue.FromFile(type, ReadScalar(type, key));
            at = _pos;
            uint elementId = ReadUInt32($"metadata '{Show(key)}' array type");
            if (elementId > (uint)GgufValueType.Float64) Fail(at, $"metadata '{Show(key)}'", $"has array element type {elementId}; GGUF value types are 0 to 12");
            var element = (GgufValueType)elementId;
            if (element == GgufValueType.Array) Fail(at, $"metadata '{Show(key)}'", "is an array of arrays, which LlmPress does not support");
            // Each element takes at least its fixed size (a string at least its 8-byte length), so a count above what
            // the rest of the file can hold is corrupt: checked before allocating anything.
            int minBytes = element == GgufValueType.String ? 8 : ScalarSize(element);
            ulong count = ReadUInt64($"metadata '{Show(key)}' array length");
            if (count > (ulong)(Remaining / minBytes) || count > int.MaxValue)
                Fail(_pos - 8, $"metadata '{Show(key)}'", $"array length {count} exceeds what the remaining {Remaining} bytes can hold; the file is truncated or corrupt");
            int n = (int)count;
            Array values = element switch
            {
                GgufValueType.UInt8 => new byte[n],
                GgufValueType.Int8 => new sbyte[n],
                GgufValueType.UInt16 => new ushort[n],
                GgufValueType.Int16 => new short[n],
                GgufValueType.UInt32 => new uint[n],
                GgufValueType.Int32 => new int[n],
                GgufValueType.Float32 => new float[n],
                GgufValueType.Bool => new bool[n],
                GgufValueType.String => new string[n],
                GgufValueType.UInt64 => new ulong[n],
                GgufValueType.Int64 => new long[n],
                _ => new double[n],
            };
            for (int i = 0; i < n; i++) values.SetValue(element == GgufValueType.String ? ReadString($"metadata '{Show(key)}'[{i}]") : ReadScalar(element, key), i);
            return GgufValue.FromFile(GgufValueType.Array, values, element);
        }

        private object ReadScalar(GgufValueType type, string key)
        {
            string field = $"metadata '{Show(key)}'";
            switch (type)
            {
                case GgufValueType.UInt8: return Read(1, field)[0];
                case GgufValueType.Int8: return (sbyte)Read(1, field)[0];
                case GgufValueType.UInt16: return BinaryPrimitives.ReadUInt16LittleEndian(Read(2, field));
                case GgufValueType.Int16: return BinaryPrimitives.ReadInt16LittleEndian(Read(2, field));
                case GgufValueType.UInt32: return BinaryPrimitives.ReadUInt32LittleEndian(Read(4, field));
                case GgufValueType.Int32: return BinaryPrimitives.ReadInt32LittleEndian(Read(4, field));
                case GgufValueType.Float32: return BinaryPrimitives.ReadSingleLittleEndian(Read(4, field));
                case GgufValueType.UInt64: return BinaryPrimitives.ReadUInt64LittleEndian(Read(8, field));
                case GgufValueType.Int64: return BinaryPrimitives.ReadInt64LittleEndian(Read(8, field));
                case GgufValueType.Float64: return BinaryPrimitives.ReadDoubleLittleEndian(Read(8, field));
                case GgufValueType.String: return ReadString(field);
                default:
                    byte b = Read(1, field)[0];
                    if (b > 1) Fail(_pos - 1, field, $"bool byte is {b}, expected 0 or 1");
                    return b == 1;
            }
        }

        private static int ScalarSize(GgufValueType type) => type switch
        {
            GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
            GgufValueType.UInt16 or GgufValueType.Int16 => 2,
            GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
            _ => 8,
        };

        private long Remaining => file.Length - _pos;

        private ReadOnlySpan<byte> Read(int bytes, string field)
        {
            if (bytes > Remaining)
                Fail(_pos, field, $"needs {bytes} bytes but the file ends at byte {file.Length}; the file is truncated");
            var span = file.GetSpan(_pos, bytes);
            _pos += bytes;
            return span;
        }

        private uint ReadUInt32(string field) => BinaryPrimitives.ReadUInt32LittleEndian(Read(4, field));
        private ulong ReadUInt64(string field) => BinaryPrimitives.ReadUInt64LittleEndian(Read(8, field));

        private long ReadCount(string field, int minBytesEach)
        {
            ulong count = ReadUInt64(field);
            if (count > (ulong)(Remaining / minBytesEach))
                Fail(_pos - 8, field, $"is {count}, more than the remaining {Remaining} bytes can hold; the file is truncated or corrupt");
            return (long)count;
        }

        private string ReadString(string field)
        {
            ulong length = ReadUInt64(field + " length");
            if (length > (ulong)Remaining || length > int.MaxValue)
                Fail(_pos - 8, field, $"string length {length} exceeds the remaining {Remaining} bytes; the file is truncated or corrupt");
            return Encoding.UTF8.GetString(Read((int)length, field));
        }

        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        private void Fail(long at, string field, string problem) =>
            throw new InvalidDataException($"{path}: {field} (byte {at}) {problem}.");

    }

    /// <summary>Text from a file as it may appear in a one-line message: control characters escaped, long text cut.</summary>
    internal static string Show(string text)
    {
        var s = new StringBuilder();
        foreach (char c in text.Length > 80 ? text[..80] : text) s.Append(c < ' ' ? $"\\u{(int)c:x4}" : c);
        if (text.Length > 80) s.Append("...");
        return s.ToString();
    }
}
