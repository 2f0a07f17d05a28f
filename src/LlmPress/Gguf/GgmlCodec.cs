using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using LlmPress.Numerics;

namespace LlmPress.Gguf;

/// <summary>
/// Whole-matrix conversion between FP32 [rows, cols] and ggml tensor data of any <see cref="GgmlType"/>, row by row
/// (each row of a ggml tensor is whole blocks). Rows run in parallel; every row is computed by the same scalar code, so
/// the bytes do not depend on the thread count.
/// </summary>
public static unsafe class GgmlCodec
{
    /// <summary>Encodes [rows, cols] as <paramref name="type"/>: F16 and BF16 round to nearest even, the block types follow ggml's reference quantizers.</summary>
    /// <exception cref="ArgumentException">cols is not a multiple of the type's block size, or the length is wrong.</exception>
    public static byte[] Encode(GgmlType type, ReadOnlySpan<float> values, int rows, int cols)
    {
        long rowBytes = CheckGeometry(type, values.Length, rows, cols);
        var result = new byte[rows * rowBytes];
        if (type == GgmlType.F32)
        {
            MemoryMarshal.AsBytes(values).CopyTo(result);
            return result;
        }
        fixed (float* source = values)
        fixed (byte* target = result)
        {
            nint x = (nint)source, y = (nint)target;
            Parallel.For(0, rows, Parallelism.Options, r =>
            {
                var row = new ReadOnlySpan<float>((float*)x + (long)r * cols, cols);
                var dst = new Span<byte>((byte*)y + r * rowBytes, (int)rowBytes);
                switch (type)
                {
                    case GgmlType.F16: TensorPrimitives.ConvertToHalf(row, MemoryMarshal.Cast<byte, Half>(dst)); break;
                    case GgmlType.BF16:
                        var bf16 = MemoryMarshal.Cast<byte, ushort>(dst);
                        for (int i = 0; i < row.Length; i++) bf16[i] = FloatConversion.SingleToBFloat16(row[i]);
                        break;
                    case GgmlType.Q8_0: GgmlQ8_0.QuantizeRow(row, dst); break;
                    case GgmlType.Q4_0: GgmlQ4_0.QuantizeRow(row, dst); break;
                    default: GgmlMxfp4.QuantizeRow(row, dst); break;
                }
            });
        }
        return result;
    }

    /// <summary>Decodes ggml data [rows, cols] to FP32, exactly as ggml's to_float / dequantize_row_* do.</summary>
    public static void Decode(GgmlType type, ReadOnlySpan<byte> data, int rows, int cols, Span<float> destination)
    {
        long rowBytes = CheckGeometry(type, destination.Length, rows, cols);
        if (data.Length != rows * rowBytes)
            throw new ArgumentException($"{GgmlTypeInfo.Name(type)} [{rows}, {cols}] needs {rows * rowBytes} bytes, got {data.Length}.", nameof(data));
        if (type == GgmlType.F32)
        {
            data.CopyTo(MemoryMarshal.AsBytes(destination));
            return;
        }
        fixed (byte* source = data)
        fixed (float* target = destination)
        {
            nint x = (nint)source, y = (nint)target;
            Parallel.For(0, rows, Parallelism.Options, r =>
            {
                var src = new ReadOnlySpan<byte>((byte*)x + r * rowBytes, (int)rowBytes);
                var row = new Span<float>((float*)y + (long)r * cols, cols);
                switch (type)
                {
                    case GgmlType.F16: TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(src), row); break;
                    case GgmlType.BF16: FloatConversion.ToSingle(DType.BF16, src, row); break;
                    case GgmlType.Q8_0: GgmlQ8_0.DequantizeRow(src, row); break;
                    case GgmlType.Q4_0: GgmlQ4_0.DequantizeRow(src, row); break;
                    default: GgmlMxfp4.DequantizeRow(src, row); break;
                }
            });
        }
    }

    /// <summary>Decodes into a new array.</summary>
    public static float[] Decode(GgmlType type, ReadOnlySpan<byte> data, int rows, int cols)
    {
        var result = new float[(long)rows * cols];
        Decode(type, data, rows, cols, result);
        return result;
    }

    private static long CheckGeometry(GgmlType type, int length, int rows, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        if (length != (long)rows * cols) throw new ArgumentException($"Expected {(long)rows * cols} values for [{rows}, {cols}], got {length}.");
        return GgmlTypeInfo.RowBytes(type, cols)
            ?? throw new ArgumentException($"{GgmlTypeInfo.Name(type)} needs rows of whole {GgmlTypeInfo.BlockSize(type)}-element blocks; {cols} columns are not.");
    }
}
