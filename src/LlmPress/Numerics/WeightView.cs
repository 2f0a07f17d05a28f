using System.Runtime.InteropServices;

namespace LlmPress.Numerics;

/// <summary>
/// A row-major matrix in its stored element type, as kept in memory (often a slice of a memory-mapped file).
/// Linear layers use the Hugging Face layout: [rows = out features, cols = in features], so y = x · Wᵀ.
/// Kernels convert BF16/F16 to FP32 on the fly; a BF16 model is never expanded in memory.
/// </summary>
public readonly struct WeightView
{
    public WeightView(DType type, int rows, int cols, ReadOnlyMemory<byte> data)
    {
        if (!DTypeInfo.IsWeightFloat(type))
            throw new ArgumentException($"Weight matrices must be F32, F16 or BF16, not {type}.", nameof(type));
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        long expected = (long)rows * cols * DTypeInfo.SizeOf(type);
        if (data.Length != expected)
            throw new ArgumentException($"Weight data has {data.Length} bytes but [{rows}, {cols}] {type} needs {expected}.", nameof(data));
        Type = type;
        Rows = rows;
        Cols = cols;
        Data = data;
    }

    public DType Type { get; }
    public int Rows { get; }
    public int Cols { get; }
    /// <summary>[Rows, Cols] elements of <see cref="Type"/>, row-major.</summary>
    public ReadOnlyMemory<byte> Data { get; }

    /// <summary>Wraps an FP32 array ([rows, cols], row-major) without copying.</summary>
    public static WeightView FromFloats(float[] values, int rows, int cols)
    {
        var bytes = new FloatArrayMemory(values).Memory;
        return new WeightView(DType.F32, rows, cols, bytes);
    }

    /// <summary>Rows [start, start + count) as a view of the same storage.</summary>
    public WeightView SliceRows(int start, int count)
    {
        if ((uint)start > (uint)Rows || (uint)count > (uint)(Rows - start))
            throw new ArgumentOutOfRangeException(nameof(count), $"Rows [{start}, {start + count}) are outside [0, {Rows}).");
        int rowBytes = Cols * DTypeInfo.SizeOf(Type);
        return new WeightView(Type, count, Cols, Data.Slice(start * rowBytes, count * rowBytes));
    }

    /// <summary>Copies row <paramref name="row"/> into <paramref name="destination"/> as FP32 ([Cols]).</summary>
    public void ReadRow(int row, Span<float> destination)
    {
        if ((uint)row >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(row));
        int size = DTypeInfo.SizeOf(Type);
        var src = Data.Span.Slice(checked(row * Cols * size), Cols * size);
        FloatConversion.ToSingle(Type, src, destination[..Cols]);
    }

    /// <summary>The whole matrix as a new FP32 array ([Rows, Cols]).</summary>
    public float[] ToFloatArray()
    {
        var result = new float[(long)Rows * Cols];
        FloatConversion.ToSingle(Type, Data.Span, result);
        return result;
    }

    private sealed class FloatArrayMemory(float[] values) : System.Buffers.MemoryManager<byte>
    {
        private GCHandle _handle;

        public override Span<byte> GetSpan() => MemoryMarshal.AsBytes(values.AsSpan());

        public override unsafe System.Buffers.MemoryHandle Pin(int elementIndex = 0)
        {
            // Pinned for as long as any handle lives; arrays of this size sit on the LOH and rarely move anyway.
            if (!_handle.IsAllocated) _handle = GCHandle.Alloc(values, GCHandleType.Pinned);
            byte* p = (byte*)_handle.AddrOfPinnedObject() + elementIndex;
            return new System.Buffers.MemoryHandle(p, default, this);
        }

        public override void Unpin() { }

        protected override void Dispose(bool disposing)
        {
            if (_handle.IsAllocated) _handle.Free();
        }
    }
}
