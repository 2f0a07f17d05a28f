using System.Buffers;

namespace LlmPress.IO;

/// <summary>
/// Presents a range of a <see cref="MappedFile"/> as <see cref="Memory{T}"/>, so it can be stored in fields and captured
/// by parallel loops (a Span cannot). The memory is not GC-managed, so pinning is a no-op.
/// Every <see cref="GetSpan"/> checks that the mapping is still alive; a Span taken before Dispose is still unsafe to use after it.
/// </summary>
internal sealed unsafe class MappedMemoryManager(MappedFile owner, byte* pointer, int length) : MemoryManager<byte>
{
    public override Span<byte> GetSpan()
    {
        owner.ThrowIfDisposed();
        return new Span<byte>(pointer, length);
    }

    public override MemoryHandle Pin(int elementIndex = 0)
    {
        owner.ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)elementIndex, (uint)length, nameof(elementIndex));
        return new MemoryHandle(pointer + elementIndex, default, this);
    }

    public override void Unpin() { }

    protected override void Dispose(bool disposing) { }
}
