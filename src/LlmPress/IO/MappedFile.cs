using System.IO.MemoryMappedFiles;

namespace LlmPress.IO;

/// <summary>
/// A whole file mapped read-only into memory: one <see cref="MemoryMappedFile"/>, one view accessor, and the view's base
/// pointer acquired once (the view handle is reference-counted, so it stays valid until <see cref="Dispose"/>).
/// </summary>
internal sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile _mapping;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _pointer;
    private volatile bool _disposed;

    private MappedFile(MemoryMappedFile mapping, MemoryMappedViewAccessor view, byte* pointer, long length)
    {
        _mapping = mapping;
        _view = view;
        _pointer = pointer;
        Length = length;
    }

    public long Length { get; }

    /// <summary>Maps <paramref name="stream"/> (taking ownership of it). The file must not be empty: the OS cannot map 0 bytes.</summary>
    public static MappedFile Map(FileStream stream)
    {
        long length = stream.Length;
        MemoryMappedFile? mapping = null;
        MemoryMappedViewAccessor? view = null;
        try
        {
            mapping = MemoryMappedFile.CreateFromFile(stream, mapName: null, capacity: 0, MemoryMappedFileAccess.Read,
                HandleInheritability.None, leaveOpen: false);
            view = mapping.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            // The view starts at the allocation-granularity boundary below offset 0 of the request; PointerOffset is the
            // distance from there to the first byte we asked for (0 here, but the API does not promise it).
            pointer += view.PointerOffset;
            return new MappedFile(mapping, view, pointer, length);
        }
        catch
        {
            view?.Dispose();
            if (mapping is not null) mapping.Dispose();
            else stream.Dispose();
            throw;
        }
    }

    /// <summary>The bytes [offset, offset + length) of the file, valid until <see cref="Dispose"/>.</summary>
    public ReadOnlySpan<byte> GetSpan(long offset, int length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if ((ulong)offset > (ulong)Length || (ulong)length > (ulong)(Length - offset))
            throw new ArgumentOutOfRangeException(nameof(offset));
        return new ReadOnlySpan<byte>(_pointer + offset, length);
    }

    /// <summary>A <see cref="ReadOnlyMemory{T}"/> over [offset, offset + length), valid until <see cref="Dispose"/>.</summary>
    public ReadOnlyMemory<byte> GetMemory(long offset, int length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if ((ulong)offset > (ulong)Length || (ulong)length > (ulong)(Length - offset))
            throw new ArgumentOutOfRangeException(nameof(offset));
        if (length == 0) return ReadOnlyMemory<byte>.Empty;
        return new MappedMemoryManager(this, _pointer + offset, length).Memory;
    }

    /// <summary>Throws once the mapping is gone, so a Span cannot be created over unmapped memory.</summary>
    public void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _pointer = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _mapping.Dispose();
    }
}
