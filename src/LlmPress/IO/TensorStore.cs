using LlmPress.Numerics;

namespace LlmPress.IO;

/// <summary>
/// The tensors of one checkpoint, whichever way it is stored:
/// a directory holding model.safetensors, a directory holding model.safetensors.index.json plus its shards
/// (model.safetensors wins when both exist, as in Hugging Face transformers), a path to an index file, or a path to one
/// .safetensors file. All files are memory-mapped and validated on open; lookups never copy unless they say so.
/// Thread-safe for reading.
/// </summary>
/// <remarks>Memory returned by <see cref="GetData"/> and <see cref="GetMatrix"/> must not be used after <see cref="Dispose"/>.</remarks>
public sealed class TensorStore : IDisposable
{
    public const string SingleFileName = "model.safetensors";

    private readonly SafeTensorsFile[] _files;
    private readonly Dictionary<string, (TensorInfo Info, SafeTensorsFile File)> _byName;
    private readonly TensorInfo[] _tensors;
    private readonly string[] _names;
    private readonly string _describedAs; // file name that error messages start with

    private TensorStore(string path, string describedAs, SafeTensorsFile[] files, List<(TensorInfo, SafeTensorsFile)> tensors)
    {
        Path = path;
        _describedAs = describedAs;
        _files = files;
        _byName = new Dictionary<string, (TensorInfo, SafeTensorsFile)>(tensors.Count, StringComparer.Ordinal);
        _tensors = new TensorInfo[tensors.Count];
        _names = new string[tensors.Count];
        for (int i = 0; i < tensors.Count; i++)
        {
            var (info, file) = tensors[i];
            _byName.Add(info.Name, (info, file));
            _tensors[i] = info;
            _names[i] = info.Name;
            TotalBytes += info.ByteLength;
        }
        Files = Array.ConvertAll(files, f => f.Path);
    }

    /// <summary>Opens a checkpoint directory, index file or .safetensors file (see the class remarks).</summary>
    /// <exception cref="FileNotFoundException">The path, the checkpoint file in a directory, or a shard does not exist.</exception>
    /// <exception cref="InvalidDataException">A file or the index is invalid, or the index and shards disagree.</exception>
    public static TensorStore Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = System.IO.Path.GetFullPath(path);
        if (Directory.Exists(fullPath))
        {
            string single = System.IO.Path.Combine(fullPath, SingleFileName);
            if (File.Exists(single)) return OpenSingle(fullPath, single);
            string index = System.IO.Path.Combine(fullPath, SafeTensorsIndex.FileName);
            if (File.Exists(index)) return OpenSharded(fullPath, index);
            IOThrow.FileNotFoundException_NoCheckpoint(fullPath);
        }
        if (!File.Exists(fullPath)) IOThrow.FileNotFoundException_File(fullPath);
        return fullPath.EndsWith(".json", StringComparison.OrdinalIgnoreCase)
            ? OpenSharded(fullPath, fullPath)
            : OpenSingle(fullPath, fullPath);
    }

    private static TensorStore OpenSingle(string storePath, string filePath)
    {
        var file = SafeTensorsFile.Open(filePath);
        var tensors = new List<(TensorInfo, SafeTensorsFile)>(file.Tensors.Count);
        foreach (var info in file.Tensors) tensors.Add((info, file));
        return new TensorStore(storePath, System.IO.Path.GetFileName(filePath), [file], tensors);
    }

    private static TensorStore OpenSharded(string storePath, string indexPath)
    {
        var entries = SafeTensorsIndex.Read(indexPath);
        var shards = new SortedDictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        try
        {
            var tensors = new List<(TensorInfo, SafeTensorsFile)>(entries.Count);
            foreach (var (name, shardPath) in entries)
            {
                if (!shards.TryGetValue(shardPath, out var shard))
                {
                    if (!File.Exists(shardPath)) IOThrow.FileNotFoundException_MissingShard(indexPath, shardPath, name);
                    shard = SafeTensorsFile.Open(shardPath);
                    shards.Add(shardPath, shard);
                }
                if (!shard.TryGetTensor(name, out var info)) IOThrow.InvalidDataException_ShardLacksTensor(indexPath, name, shardPath);
                tensors.Add((info, shard));
            }
            return new TensorStore(storePath, System.IO.Path.GetFileName(indexPath), [.. shards.Values], tensors);
        }
        catch
        {
            foreach (var shard in shards.Values) shard.Dispose();
            throw;
        }
    }

    /// <summary>The path given to <see cref="Open"/>, made absolute.</summary>
    public string Path { get; }

    /// <summary>Tensor names: file order for one file, weight_map order for a sharded checkpoint.</summary>
    public IReadOnlyCollection<string> Names => _names;

    /// <summary>Every tensor, in the order of <see cref="Names"/>.</summary>
    public IReadOnlyList<TensorInfo> Tensors => _tensors;

    /// <summary>Sum of the tensors' data bytes.</summary>
    public long TotalBytes { get; }

    /// <summary>The .safetensors files, absolute paths (shards sorted by name).</summary>
    public IReadOnlyList<string> Files { get; }

    public bool Contains(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _byName.ContainsKey(name);
    }

    public bool TryGetInfo(string name, out TensorInfo info)
    {
        ArgumentNullException.ThrowIfNull(name);
        bool found = _byName.TryGetValue(name, out var entry);
        info = entry.Info;
        return found;
    }

    /// <exception cref="InvalidDataException">No tensor has that name.</exception>
    public TensorInfo GetInfo(string name) => Find(name).Info;

    /// <summary>The tensor's raw bytes, zero-copy (see <see cref="SafeTensorsFile.GetData"/>).</summary>
    /// <exception cref="InvalidDataException">No tensor has that name.</exception>
    /// <exception cref="NotSupportedException">The tensor is larger than <see cref="int.MaxValue"/> bytes.</exception>
    public ReadOnlyMemory<byte> GetData(string name)
    {
        var (info, file) = Find(name);
        return file.GetData(info);
    }

    /// <summary>A weight matrix [rows, cols] in its stored type (F32, F16 or BF16), zero-copy.</summary>
    /// <exception cref="InvalidDataException">Missing tensor, a shape other than [rows, cols], or a non-float dtype.</exception>
    public WeightView GetMatrix(string name, int rows, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        var (info, file) = Find(name);
        if (info.Shape is not [long r, long c] || r != rows || c != cols)
            IOThrow.InvalidDataException_ShapeMismatch(info, TensorInfo.FormatShape([rows, cols]), Path);
        if (!DTypeInfo.IsWeightFloat(info.DType)) IOThrow.InvalidDataException_NotFloat(info, Path);
        return new WeightView(info.DType, rows, cols, file.GetData(info));
    }

    /// <summary>
    /// A copy of a small float tensor (norm weights, biases) converted to FP32. The tensor's shape must equal
    /// <paramref name="expectedShape"/> exactly; passing no dimensions means a scalar.
    /// </summary>
    /// <exception cref="InvalidDataException">Missing tensor, a different shape, or a non-float dtype.</exception>
    public float[] ReadFloats(string name, params long[] expectedShape)
    {
        ArgumentNullException.ThrowIfNull(expectedShape);
        var (info, file) = Find(name);
        if (!info.Shape.AsSpan().SequenceEqual(expectedShape))
            IOThrow.InvalidDataException_ShapeMismatch(info, TensorInfo.FormatShape(expectedShape), Path);
        if (!DTypeInfo.IsWeightFloat(info.DType)) IOThrow.InvalidDataException_NotFloat(info, Path);
        var data = file.GetData(info);
        var result = new float[info.ElementCount];
        FloatConversion.ToSingle(info.DType, data.Span, result);
        return result;
    }

    private (TensorInfo Info, SafeTensorsFile File) Find(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!_byName.TryGetValue(name, out var entry)) IOThrow.InvalidDataException_TensorNotFound(_describedAs, name, Path);
        return entry;
    }

    /// <summary>Unmaps every file. Memory obtained earlier must not be used afterwards.</summary>
    public void Dispose()
    {
        foreach (var file in _files) file.Dispose();
    }
}
