using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace LlmPress.Quantization.Pipeline;

/// <summary>
/// An <see cref="ActivationStore"/> in a spill file: slot s occupies bytes [s·SlotLength·4, (s+1)·SlotLength·4).
/// Positioned reads and writes (RandomAccess), not a memory map, so the data sits in the OS page cache — which the
/// kernel drops under pressure — and never in this process's working set. The file is deleted on dispose (and,
/// should the process die, the journal removes leftover spill files on its next open).
/// </summary>
public sealed class DiskActivationStore : ActivationStore
{
    /// <summary>File names start with this, so leftovers can be recognised.</summary>
    public const string FilePrefix = "spill-";

    private readonly SafeFileHandle _file;

    public DiskActivationStore(int slotCount, long slotLength, string directory) : base(slotCount, slotLength)
    {
        Directory.CreateDirectory(directory);
        FilePath = Path.Combine(directory, $"{FilePrefix}{Guid.NewGuid().ToString("N")[..12]}.bin");
        _file = File.OpenHandle(FilePath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.DeleteOnClose);
    }

    /// <summary>The spill file.</summary>
    public string FilePath { get; }

    public override bool IsSpilled => true;

    private long Offset(int slot) => slot * SlotLength * sizeof(float);

    protected override void WriteCore(int slot, ReadOnlySpan<float> values) =>
        RandomAccess.Write(_file, MemoryMarshal.AsBytes(values), Offset(slot));

    protected override void ReadCore(int slot, Span<float> destination)
    {
        var bytes = MemoryMarshal.AsBytes(destination);
        long offset = Offset(slot);
        while (bytes.Length > 0)
        {
            int read = RandomAccess.Read(_file, bytes, offset);
            if (read == 0) throw new IOException($"{FilePath}: spill file ended early at byte {offset} (slot {slot} was never written).");
            bytes = bytes[read..];
            offset += read;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _file.Dispose();
    }
}
