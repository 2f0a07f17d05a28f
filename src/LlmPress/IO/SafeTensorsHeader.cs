using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Unicode;
using LlmPress.Numerics;

namespace LlmPress.IO;

/// <summary>
/// Parses and validates a safetensors header, following the reference implementation (huggingface/safetensors,
/// <c>SafeTensors::read_metadata</c> and <c>Metadata::validate</c>):
/// <code>
/// [u64 LE: N] [N bytes: UTF-8 JSON object, padded with spaces] [data section: every tensor, back to back]
/// </code>
/// Rules checked: N ≤ 100,000,000 and N ≤ file length − 8; the header is UTF-8 JSON whose top level is an object; each
/// entry other than "__metadata__" (a string → string map) has a known "dtype", a "shape" of non-negative integers and
/// "data_offsets" [begin, end] relative to the data section with begin ≤ end ≤ data length and
/// end − begin = element count × dtype size (checked arithmetic). Sorted by offset, the tensors must tile the data section
/// exactly: each begins where the previous ended (no overlap, no hole) and the last ends at the end of the file
/// (the reference rejects trailing bytes as MetadataIncompleteBuffer). Names must be unique (the reference's JSON map would
/// silently keep the last duplicate; we reject instead). Unknown fields inside an entry are ignored, as the reference does.
/// </summary>
internal static class SafeTensorsHeader
{
    public const long MaxHeaderLength = 100_000_000;
    public const string MetadataKey = "__metadata__";

    private static readonly JsonDocumentOptions s_jsonOptions = new() { MaxDepth = 64 };

    /// <summary>Result of <see cref="Parse"/>: tensors sorted by offset, metadata, and where the data section starts.</summary>
    public sealed record Result(TensorInfo[] Tensors, Dictionary<string, string> Metadata, long DataStart);

    /// <param name="path">Used in messages and stored in each <see cref="TensorInfo.FilePath"/>.</param>
    /// <param name="file">The mapped file.</param>
    public static Result Parse(string path, MappedFile file)
    {
        long fileLength = file.Length;
        if (fileLength < 8) IOThrow.InvalidDataException_FileTooShort(path, fileLength);
        ulong declared = BinaryPrimitives.ReadUInt64LittleEndian(file.GetSpan(0, 8));
        if (declared > MaxHeaderLength) IOThrow.InvalidDataException_HeaderTooLarge(path, declared);
        if (declared > (ulong)(fileLength - 8)) IOThrow.InvalidDataException_HeaderPastEnd(path, declared, fileLength);
        long headerLength = (long)declared;
        long dataStart = 8 + headerLength;
        long dataLength = fileLength - dataStart;

        ReadOnlySpan<byte> headerBytes = file.GetSpan(8, (int)headerLength);
        if (!Utf8.IsValid(headerBytes))
            IOThrow.InvalidDataException_HeaderNotUtf8(path, headerLength, 8 + FirstInvalidUtf8(headerBytes));

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var entries = new List<Entry>();
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(headerBytes.ToArray(), s_jsonOptions);
        }
        catch (JsonException e)
        {
            IOThrow.InvalidDataException_HeaderNotJson(path, headerLength, e);
            throw; // unreachable
        }
        using (document)
        {
            try
            {
                ReadEntries(path, document.RootElement, metadata, entries);
            }
            catch (InvalidOperationException e)
            {
                // JsonElement.GetString throws this for text it cannot transcode (e.g. a lone surrogate escape "\ud800").
                IOThrow.InvalidDataException_HeaderNotJson(path, headerLength, e);
            }
        }

        var tensors = new TensorInfo[entries.Count];
        for (int i = 0; i < entries.Count; i++)
            tensors[i] = Validate(path, entries[i], dataStart, dataLength);

        // Sort by (begin, end); zero-length tensors may share an offset, so the name breaks ties for a stable order.
        Array.Sort(tensors, static (a, b) =>
        {
            int c = a.DataOffset.CompareTo(b.DataOffset);
            if (c == 0) c = a.ByteLength.CompareTo(b.ByteLength);
            return c != 0 ? c : string.CompareOrdinal(a.Name, b.Name);
        });

        long covered = 0;
        TensorInfo? previous = null;
        foreach (var tensor in tensors)
        {
            long begin = tensor.DataOffset - dataStart;
            if (begin < covered)
                IOThrow.InvalidDataException_Overlap(path, tensor.Name, begin, begin + tensor.ByteLength,
                    previous!.Name, previous.DataOffset - dataStart, covered, dataStart);
            if (begin > covered)
                IOThrow.InvalidDataException_Gap(path, tensor.Name, begin, covered, previous?.Name, dataStart);
            covered = begin + tensor.ByteLength;
            previous = tensor;
        }
        if (covered != dataLength) IOThrow.InvalidDataException_TrailingBytes(path, covered, dataLength, dataStart);

        return new Result(tensors, metadata, dataStart);
    }

    private readonly record struct Entry(string Name, DType DType, long[] Shape, long Begin, long End);

    private static void ReadEntries(string path, JsonElement root, Dictionary<string, string> metadata, List<Entry> entries)
    {
        if (root.ValueKind != JsonValueKind.Object) IOThrow.InvalidDataException_HeaderNotObject(path, root.ValueKind);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var property in root.EnumerateObject())
        {
            string name = property.Name;
            if (!seen.Add(name)) IOThrow.InvalidDataException_DuplicateTensor(path, name);
            if (name == MetadataKey) ReadMetadata(path, property.Value, metadata);
            else entries.Add(ReadEntry(path, name, property.Value));
        }
    }

    private static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind == JsonValueKind.Null) return; // the reference reads it as Option<HashMap>: null means none
        if (value.ValueKind != JsonValueKind.Object) IOThrow.InvalidDataException_MetadataNotObject(path, value.ValueKind);
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
                IOThrow.InvalidDataException_MetadataValueNotString(path, item.Name, item.Value.ValueKind);
            if (!metadata.TryAdd(item.Name, item.Value.GetString()!))
                IOThrow.InvalidDataException_DuplicateTensor(path, $"{MetadataKey}.{item.Name}");
        }
    }

    private static Entry ReadEntry(string path, string name, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object) IOThrow.InvalidDataException_EntryNotObject(path, name, value.ValueKind);
        JsonElement? dtypeElement = null, shapeElement = null, offsetsElement = null;
        foreach (var field in value.EnumerateObject())
        {
            switch (field.Name)
            {
                case "dtype":
                    if (dtypeElement is not null) IOThrow.InvalidDataException_DuplicateField(path, name, field.Name);
                    dtypeElement = field.Value;
                    break;
                case "shape":
                    if (shapeElement is not null) IOThrow.InvalidDataException_DuplicateField(path, name, field.Name);
                    shapeElement = field.Value;
                    break;
                case "data_offsets":
                    if (offsetsElement is not null) IOThrow.InvalidDataException_DuplicateField(path, name, field.Name);
                    offsetsElement = field.Value;
                    break;
            }
        }
        if (dtypeElement is not { } dtypeValue) { IOThrow.InvalidDataException_MissingField(path, name, "dtype"); return default; }
        if (shapeElement is not { } shapeValue) { IOThrow.InvalidDataException_MissingField(path, name, "shape"); return default; }
        if (offsetsElement is not { } offsetsValue) { IOThrow.InvalidDataException_MissingField(path, name, "data_offsets"); return default; }

        if (dtypeValue.ValueKind != JsonValueKind.String) IOThrow.InvalidDataException_DTypeNotString(path, name, dtypeValue.ValueKind);
        string dtypeName = dtypeValue.GetString()!;
        if (!DTypeInfo.TryParseSafeTensorsName(dtypeName, out DType dtype)) IOThrow.InvalidDataException_BadDType(path, name, dtypeName);

        if (shapeValue.ValueKind != JsonValueKind.Array) IOThrow.InvalidDataException_BadShape(path, name, shapeValue.GetRawText());
        var shape = new long[shapeValue.GetArrayLength()];
        int d = 0;
        foreach (var dim in shapeValue.EnumerateArray())
        {
            if (!TryGetNonNegative(dim, out shape[d++])) IOThrow.InvalidDataException_BadShape(path, name, shapeValue.GetRawText());
        }

        if (offsetsValue.ValueKind != JsonValueKind.Array || offsetsValue.GetArrayLength() != 2
            || !TryGetNonNegative(offsetsValue[0], out long begin) || !TryGetNonNegative(offsetsValue[1], out long end))
        {
            IOThrow.InvalidDataException_BadOffsets(path, name, offsetsValue.GetRawText());
            return default;
        }
        return new Entry(name, dtype, shape, begin, end);
    }

    private static bool TryGetNonNegative(JsonElement element, out long value)
    {
        value = 0;
        return element.ValueKind == JsonValueKind.Number && element.TryGetInt64(out value) && value >= 0;
    }

    private static TensorInfo Validate(string path, Entry entry, long dataStart, long dataLength)
    {
        if (entry.End < entry.Begin) IOThrow.InvalidDataException_OffsetsReversed(path, entry.Name, entry.Begin, entry.End);
        long expectedBytes = 0;
        try
        {
            expectedBytes = checked(TensorInfo.ComputeElementCount(entry.Shape) * DTypeInfo.SizeOf(entry.DType));
        }
        catch (OverflowException)
        {
            IOThrow.InvalidDataException_SizeOverflow(path, entry.Name, entry.DType, entry.Shape);
        }
        if (entry.End - entry.Begin != expectedBytes)
            IOThrow.InvalidDataException_SizeMismatch(path, entry.Name, entry.DType, entry.Shape, entry.Begin, entry.End, expectedBytes);
        if (entry.End > dataLength) IOThrow.InvalidDataException_ExceedsData(path, entry.Name, entry.Begin, entry.End, dataLength);
        return new TensorInfo(entry.Name, entry.DType, entry.Shape, dataStart + entry.Begin, expectedBytes, path);
    }

    private static long FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        System.Text.Unicode.Utf8.ToUtf16(bytes, new char[bytes.Length], out int read, out _, replaceInvalidSequences: false);
        return read;
    }
}
