using System.Buffers;
using System.Buffers.Binary;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.RegularExpressions;
using LlmPress.Numerics;

namespace LlmPress.IO;

/// <summary>
/// Writes safetensors files the way the reference implementation does: tensors ordered by descending element size, then
/// by name (so every tensor is aligned to its element size), the JSON header padded with spaces so the data section starts
/// on an 8-byte boundary, "__metadata__" first. Output is deterministic: the same tensors give the same bytes in any input order.
/// Every file is written atomically through <see cref="AtomicFile"/>.
/// </summary>
public static partial class SafeTensorsWriter
{
    /// <summary>Shard file names written by <see cref="WriteSharded"/> (the Hugging Face pattern).</summary>
    [GeneratedRegex(@"^model-\d{5}-of-\d{5}\.safetensors$")]
    private static partial Regex ShardNamePattern();

    private static readonly JsonWriterOptions s_headerOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly JsonWriterOptions s_indexOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = true };

    /// <summary>
    /// Writes one .safetensors file atomically: to "&lt;path&gt;.tmp-&lt;random&gt;", flushed, then renamed over
    /// <paramref name="path"/>. On any exception the temporary file is deleted and nothing appears at <paramref name="path"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A tensor has an empty, reserved or duplicate name, a negative dimension, or data of the wrong length.</exception>
    public static void Write(string path, IReadOnlyList<TensorToWrite> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        string fullPath = Path.GetFullPath(path);
        TensorToWrite[] ordered = Validate(fullPath, tensors);
        byte[] header = BuildHeader(ordered, metadata);
        AtomicFile.Write(fullPath, stream =>
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
            stream.Write(prefix);
            stream.Write(header);
            foreach (var tensor in ordered) stream.Write(tensor.Data.Span);
        });
    }

    /// <summary>
    /// Writes a sharded checkpoint into <paramref name="directory"/> as Hugging Face does: tensors, in the given order, are
    /// packed greedily into shards of at most <paramref name="maxShardBytes"/> data bytes (a larger tensor gets a shard
    /// of its own), named model-00001-of-0000N.safetensors, plus model.safetensors.index.json with
    /// {"metadata": {"total_size": …}, "weight_map": {name: shard}}. When everything fits in one shard, a single
    /// model.safetensors is written instead and no index. Each file is atomic; the checkpoint as a whole is not, but the
    /// index is written last. Leftovers of an earlier save (model.safetensors, the index, or model-*-of-*.safetensors
    /// shards not written now) are deleted afterwards, so <see cref="TensorStore.Open"/> sees only the new checkpoint.
    /// The directory is created if needed.
    /// </summary>
    /// <returns>The paths written, shards first and the index last.</returns>
    public static IReadOnlyList<string> WriteSharded(string directory, IReadOnlyList<TensorToWrite> tensors, long maxShardBytes,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        string fullDirectory = Path.GetFullPath(directory);
        Validate(Path.Combine(fullDirectory, SafeTensorsIndex.FileName), tensors);
        Directory.CreateDirectory(fullDirectory);

        var shards = new List<List<TensorToWrite>>();
        long shardBytes = 0, totalBytes = 0;
        foreach (var tensor in tensors)
        {
            long bytes = tensor.Data.Length;
            if (shards.Count == 0 || (shards[^1].Count > 0 && shardBytes + bytes > maxShardBytes))
            {
                shards.Add([]);
                shardBytes = 0;
            }
            shards[^1].Add(tensor);
            shardBytes += bytes;
            totalBytes += bytes;
        }

        var written = new List<string>();
        if (shards.Count <= 1)
        {
            string single = Path.Combine(fullDirectory, TensorStore.SingleFileName);
            Write(single, tensors, metadata);
            written.Add(single);
        }
        else
        {
            var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
            for (int i = 0; i < shards.Count; i++)
            {
                string shardName = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
                string shardPath = Path.Combine(fullDirectory, shardName);
                Write(shardPath, shards[i], metadata);
                written.Add(shardPath);
                foreach (var tensor in shards[i]) weightMap.Add(tensor.Name, shardName);
            }
            string indexPath = Path.Combine(fullDirectory, SafeTensorsIndex.FileName);
            AtomicFile.Write(indexPath, stream => WriteIndex(stream, totalBytes, weightMap));
            written.Add(indexPath);
        }
        DeleteStaleFiles(fullDirectory, written);
        return written;
    }

    private static TensorToWrite[] Validate(string path, IReadOnlyList<TensorToWrite> tensors)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        var ordered = new TensorToWrite[tensors.Count];
        for (int i = 0; i < ordered.Length; i++)
        {
            var tensor = tensors[i];
            string name = tensor.Name;
            if (string.IsNullOrEmpty(name)) IOThrow.ArgumentException_BadTensorToWrite(path, name ?? "", "the name is empty");
            if (name == SafeTensorsHeader.MetadataKey) IOThrow.ArgumentException_BadTensorToWrite(path, name, "the name is reserved for metadata");
            if (!names.Add(name)) IOThrow.ArgumentException_BadTensorToWrite(path, name, "another tensor has the same name");
            if (tensor.Shape is null) IOThrow.ArgumentException_BadTensorToWrite(path, name, "the shape is null");
            if (!Enum.IsDefined(tensor.DType)) IOThrow.ArgumentException_BadTensorToWrite(path, name, $"dtype {(int)tensor.DType} is not defined");
            foreach (long dim in tensor.Shape)
            {
                if (dim < 0) IOThrow.ArgumentException_BadTensorToWrite(path, name, $"shape {TensorInfo.FormatShape(tensor.Shape)} has a negative dimension");
            }
            long expected = 0;
            try
            {
                expected = checked(TensorInfo.ComputeElementCount(tensor.Shape) * DTypeInfo.SizeOf(tensor.DType));
            }
            catch (OverflowException)
            {
                IOThrow.ArgumentException_BadTensorToWrite(path, name, $"shape {TensorInfo.FormatShape(tensor.Shape)} is too large");
            }
            if (tensor.Data.Length != expected)
            {
                IOThrow.ArgumentException_BadTensorToWrite(path, name,
                    $"{DTypeInfo.SafeTensorsName(tensor.DType)} {TensorInfo.FormatShape(tensor.Shape)} needs {expected} bytes but the data has {tensor.Data.Length}");
            }
            ordered[i] = tensor;
        }
        // Largest elements first keeps each tensor aligned to its element size (the data section starts 8-aligned).
        Array.Sort(ordered, static (a, b) =>
        {
            int c = DTypeInfo.SizeOf(b.DType).CompareTo(DTypeInfo.SizeOf(a.DType));
            return c != 0 ? c : string.CompareOrdinal(a.Name, b.Name);
        });
        return ordered;
    }

    /// <summary>The JSON header, space-padded to a multiple of 8 bytes.</summary>
    private static byte[] BuildHeader(TensorToWrite[] ordered, IReadOnlyDictionary<string, string>? metadata)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer, s_headerOptions))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(SafeTensorsHeader.MetadataKey);
                foreach (var (key, value) in metadata.OrderBy(pair => pair.Key, StringComparer.Ordinal))
                {
                    ArgumentNullException.ThrowIfNull(value, $"metadata[{key}]");
                    json.WriteString(key, value);
                }
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var tensor in ordered)
            {
                json.WriteStartObject(tensor.Name);
                json.WriteString("dtype", DTypeInfo.SafeTensorsName(tensor.DType));
                json.WriteStartArray("shape");
                foreach (long dim in tensor.Shape) json.WriteNumberValue(dim);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                offset += tensor.Data.Length;
                json.WriteNumberValue(offset);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        int padded = (buffer.WrittenCount + 7) & ~7;
        byte[] header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return header;
    }

    private static void WriteIndex(Stream stream, long totalBytes, SortedDictionary<string, string> weightMap)
    {
        using var json = new Utf8JsonWriter(stream, s_indexOptions);
        json.WriteStartObject();
        json.WriteStartObject("metadata");
        json.WriteNumber("total_size", totalBytes);
        json.WriteEndObject();
        json.WriteStartObject("weight_map");
        foreach (var (name, shard) in weightMap) json.WriteString(name, shard);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    private static void DeleteStaleFiles(string directory, List<string> written)
    {
        var keep = new HashSet<string>(written, StringComparer.Ordinal);
        foreach (string path in Directory.EnumerateFiles(directory))
        {
            if (keep.Contains(path)) continue;
            string name = Path.GetFileName(path);
            if (name == TensorStore.SingleFileName || name == SafeTensorsIndex.FileName || ShardNamePattern().IsMatch(name))
                File.Delete(path);
        }
    }
}
