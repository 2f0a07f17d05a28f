using System.Runtime.CompilerServices;

namespace LlmPress.Numerics.Kernels;

/// <summary>
/// Per-thread, 64-byte aligned, pinned float scratch that grows and is then reused (no per-call allocation in
/// steady state). Each thread owns a few named slots; a slot's memory lives for the thread's lifetime.
/// </summary>
internal static unsafe class ScratchBuffer
{
    public const int SlotCount = 6;
    /// <summary>Slot for packed B panels (shared by the threads of one GEMM while its caller waits).</summary>
    public const int PackedB = 0;
    /// <summary>Slot for packed A blocks (private to the thread).</summary>
    public const int PackedA = 1;
    /// <summary>Small per-thread temporaries (an edge tile, one converted row, a decode GEMV's per-group activation sums).</summary>
    public const int Small = 2;
    /// <summary>Extra workspace for algorithms built on GEMM (Cholesky, triangular inverse).</summary>
    public const int Work = 3;
    /// <summary>One row widened from F16/BF16 while packing.</summary>
    public const int Convert = 4;
    /// <summary>A second workspace for algorithms built on GEMM (a small inverted diagonal block).</summary>
    public const int Work2 = 5;

    [ThreadStatic] private static float[]?[]? t_arrays;

    /// <summary>Pointer to at least <paramref name="length"/> floats, 64-byte aligned, contents undefined.</summary>
    public static float* Get(int slot, long length)
    {
        var arrays = t_arrays ??= new float[SlotCount][];
        var array = arrays[slot];
        if (array is null || array.Length - 16 < length)
        {
            long grown = Math.Max(length, array is null ? 0 : (long)(array.Length * 1.5));
            if (grown + 16 > Array.MaxLength) throw new OutOfMemoryException($"Scratch of {length} floats is too large.");
            array = GC.AllocateUninitializedArray<float>((int)grown + 16, pinned: true);
            arrays[slot] = array;
        }
        float* p = (float*)Unsafe.AsPointer(ref array[0]);
        return (float*)(((nint)p + 63) & ~(nint)63);
    }
}
