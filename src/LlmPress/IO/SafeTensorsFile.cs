namespace LlmPress.IO;

/// <summary>
/// One .safetensors file, memory-mapped read-only and validated on open (see <see cref="SafeTensorsHeader"/> for the rules).
/// Tensor data is never copied: <see cref="GetData"/> returns a view into the mapping.
/// Thread-safe for reading once opened.
/// </summary>
/// <remarks>
/// Memory returned by <see cref="GetData"/> (and spans taken from it) must not be used after <see cref="Dispose"/>: the
/// pages are unmapped. Creating a new Span from such a Memory throws <see cref="ObjectDisposedException"/>, but a Span
/// taken earlier would read unmapped memory. The file must not be truncated by another process while it is open.
/// </remarks>
public sealed class SafeTensorsFile : IDisposable
{
    private readonly MappedFile _file;
    private readonly Dictionary<string, TensorInfo> _byName;
    private readonly TensorInfo[] _tensors;

    private SafeTensorsFile(string path, MappedFile file, SafeTensorsHeader.Result header)
    {
        Path = path;
        _file = file;
        _tensors = header.Tensors;
        Metadata = header.Metadata.AsReadOnly();
        _byName = new Dictionary<string, TensorInfo>(_tensors.Length, StringComparer.Ordinal);
        foreach (var tensor in _tensors) _byName.Add(tensor.Name, tensor);
    }

    /// <summary>Maps and validates <paramref name="path"/>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a valid safetensors file (the message says where and why).</exception>
    public static SafeTensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = System.IO.Path.GetFullPath(path);
        if (Directory.Exists(fullPath)) IOThrow.ArgumentException_IsDirectory(fullPath);
        if (!File.Exists(fullPath)) IOThrow.FileNotFoundException_File(fullPath);

        var stream = new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.RandomAccess);
        MappedFile? file = null;
        try
        {
            // An empty file cannot be mapped; reject anything without the 8-byte prefix before trying.
            if (stream.Length < 8) IOThrow.InvalidDataException_FileTooShort(fullPath, stream.Length);
            file = MappedFile.Map(stream);
            return new SafeTensorsFile(fullPath, file, SafeTensorsHeader.Parse(fullPath, file));
        }
        catch
        {
            if (file is not null) file.Dispose();
            else stream.Dispose();
            throw;
        }
    }

    /// <summary>Absolute path of the file.</summary>
    public string Path { get; }

    /// <summary>The header's "__metadata__" map (empty when absent), e.g. {"format": "pt"}.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>All tensors in file order (ascending data offset).</summary>
    public IReadOnlyList<TensorInfo> Tensors => _tensors;

    public bool TryGetTensor(string name, out TensorInfo info)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _byName.TryGetValue(name, out info!);
    }

    /// <summary>The tensor's raw little-endian bytes, as a zero-copy view into the mapping (empty for 0 elements).</summary>
    /// <exception cref="InvalidDataException">No tensor has that name.</exception>
    /// <exception cref="NotSupportedException">The tensor is larger than <see cref="int.MaxValue"/> bytes.</exception>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    public ReadOnlyMemory<byte> GetData(string name)
    {
        if (!TryGetTensor(name, out var info)) IOThrow.InvalidDataException_TensorNotInFile(Path, name);
        return GetData(info);
    }

    internal ReadOnlyMemory<byte> GetData(TensorInfo info)
    {
        if (info.ByteLength > int.MaxValue) IOThrow.NotSupportedException_TensorTooLarge(Path, info.Name, info.ByteLength);
        return _file.GetMemory(info.DataOffset, (int)info.ByteLength);
    }

    /// <summary>Unmaps the file. Memory obtained from <see cref="GetData"/> must not be used afterwards.</summary>
    public void Dispose() => _file.Dispose();
}
