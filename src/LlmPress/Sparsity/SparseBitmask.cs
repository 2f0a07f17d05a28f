using LlmPress.IO;
using LlmPress.Numerics;

namespace LlmPress.Sparsity;

/// <summary>
/// compressed-tensors' "sparse-24-bitmask" storage of an N:M-sparse matrix (<see cref="SparseLayout.Bitmask"/>), for any
/// N:M: the M−N kept values of every group in row order, a bitmask of the kept positions (numpy packbits, little bit
/// order: column c is bit c % 8 of byte c / 8 of its row) and the dense shape. Values keep their stored dtype and bytes,
/// so decoding gives back the dense matrix bit for bit.
/// </summary>
public static class SparseBitmask
{
    /// <summary>Tensor suffixes after the module name: "X.compressed", "X.bitmask", "X.shape" (compressed-tensors' names).</summary>
    public const string CompressedSuffix = "compressed", BitmaskSuffix = "bitmask", ShapeSuffix = "shape";

    /// <summary>compressed-tensors' name of the layout (sparsity_config.format).</summary>
    public const string FormatName = "sparse-24-bitmask";

    /// <summary>Bytes of the three tensors for a [rows, cols] matrix of <paramref name="type"/> under <paramref name="pattern"/> (N:M).</summary>
    public static long StorageBytes(SparsityPattern pattern, DType type, int rows, int cols)
    {
        if (!pattern.IsNOfM) throw new ArgumentException($"The bitmask layout needs an N:M pattern, not {pattern}.", nameof(pattern));
        long kept = (long)cols / pattern.M * (pattern.M - pattern.N);
        return (long)rows * (kept * DTypeInfo.SizeOf(type) + BitmaskBytes(cols)) + 2 * sizeof(long);
    }

    /// <summary>Bytes of one bitmask row: ⌈cols/8⌉.</summary>
    public static int BitmaskBytes(int cols) => (cols + 7) / 8;

    /// <summary>
    /// Encodes the dense [rows, cols] matrix <paramref name="dense"/> (raw little-endian elements of <paramref name="type"/>).
    /// In each group of M the M−N kept positions are the entries whose bits are not +0, largest magnitude first (ties
    /// to the lower column), then +0 entries if a group has fewer nonzeros (they are stored as values, so decoding is
    /// exact); a group with more than M−N nonzeros is refused.
    /// </summary>
    /// <returns>The tensors named "<paramref name="module"/>.compressed", ".bitmask" and ".shape".</returns>
    /// <exception cref="ArgumentException">The matrix is not N:M sparse (the message names the module, row and group).</exception>
    public static IReadOnlyList<TensorToWrite> Encode(string module, ReadOnlySpan<byte> dense, DType type, int rows, int cols, SparsityPattern pattern)
    {
        if (!pattern.IsNOfM) throw new ArgumentException($"{module}: the bitmask layout needs an N:M pattern, not {pattern}.", nameof(pattern));
        pattern.CheckFits(cols, module);
        int size = DTypeInfo.SizeOf(type), m = pattern.M, keep = m - pattern.N, maskBytes = BitmaskBytes(cols);
        if (dense.Length != (long)rows * cols * size) throw new ArgumentException($"{module}: {dense.Length} bytes are not [{rows}, {cols}] of {type}.", nameof(dense));
        int keptCols = cols / m * keep;
        var values = new byte[(long)rows * keptCols * size];
        var mask = new byte[(long)rows * maskBytes];
        Span<int> order = stackalloc int[m]; // M ≤ 256 (SparsityPattern)
        Span<float> magnitude = stackalloc float[m];
        var rowValues = new float[cols];
        long v = 0;
        for (int r = 0; r < rows; r++)
        {
            var row = dense.Slice(r * cols * size, cols * size);
            FloatConversion.ToSingle(type, row, rowValues);
            var rowMask = mask.AsSpan(r * maskBytes, maskBytes);
            for (int g = 0; g < cols; g += m)
            {
                int nonzero = 0;
                for (int i = 0; i < m; i++)
                {
                    bool isPositiveZero = !row.Slice((g + i) * size, size).ContainsAnyExcept((byte)0);
                    if (!isPositiveZero) nonzero++;
                    // +0 sorts below every other value (−1); others by |value| (−0 counts as a value: it is kept bit for bit).
                    magnitude[i] = isPositiveZero ? -1f : Math.Abs(rowValues[g + i]);
                    order[i] = i;
                }
                if (nonzero > keep)
                    throw new ArgumentException($"{module}: row {r}, columns {g}–{g + m - 1} hold {nonzero} nonzero values; {pattern} keeps at most {keep} of {m}.");
                // Kept = the `keep` largest magnitudes, ties to the lower column; written in column order.
                for (int i = 1; i < m; i++)
                    for (int j = i; j > 0 && Before(magnitude, order[j], order[j - 1]); j--)
                        (order[j], order[j - 1]) = (order[j - 1], order[j]);
                for (int i = 0; i < m; i++)
                {
                    bool kept = false;
                    for (int k = 0; k < keep; k++) kept |= order[k] == i;
                    if (!kept) continue;
                    int c = g + i;
                    rowMask[c >> 3] |= (byte)(1 << (c & 7));
                    row.Slice(c * size, size).CopyTo(values.AsSpan((int)(v * size), size));
                    v++;
                }
            }
        }
        var shape = new byte[2 * sizeof(long)];
        BitConverter.TryWriteBytes(shape.AsSpan(0, 8), (long)rows);
        BitConverter.TryWriteBytes(shape.AsSpan(8, 8), (long)cols);
        return
        [
            new TensorToWrite($"{module}.{CompressedSuffix}", type, [rows, keptCols], values),
            new TensorToWrite($"{module}.{BitmaskSuffix}", DType.U8, [rows, maskBytes], mask),
            new TensorToWrite($"{module}.{ShapeSuffix}", DType.I64, [2, 1], shape),
        ];
    }

    /// <summary>
    /// Decodes the layout back to the dense [rows, cols] matrix in the values' dtype (raw bytes, pruned entries +0).
    /// </summary>
    /// <param name="where">Names the tensors in errors (e.g. "model.safetensors: model.layers.0.mlp.up_proj").</param>
    /// <exception cref="InvalidDataException">Shapes, dtypes or bit counts that do not fit (the message names <paramref name="where"/>).</exception>
    public static byte[] Decode(ReadOnlySpan<byte> compressed, DType type, long[] compressedShape, ReadOnlySpan<byte> bitmask, long[] bitmaskShape,
        ReadOnlySpan<byte> shape, int rows, int cols, string where)
    {
        if (!DTypeInfo.IsWeightFloat(type)) throw new InvalidDataException($"{where}.{CompressedSuffix}: dtype {type} is not a float type.");
        if (shape.Length != 2 * sizeof(long) || BitConverter.ToInt64(shape[..8]) != rows || BitConverter.ToInt64(shape[8..]) != cols)
            throw new InvalidDataException($"{where}.{ShapeSuffix}: does not say [{rows}, {cols}] as two I64 values.");
        int maskBytes = BitmaskBytes(cols);
        if (bitmaskShape.Length != 2 || bitmaskShape[0] != rows || bitmaskShape[1] != maskBytes || bitmask.Length != (long)rows * maskBytes)
            throw new InvalidDataException($"{where}.{BitmaskSuffix}: shape [{string.Join(", ", bitmaskShape)}], expected [{rows}, {maskBytes}] U8.");
        if (compressedShape.Length != 2 || compressedShape[0] != rows)
            throw new InvalidDataException($"{where}.{CompressedSuffix}: shape [{string.Join(", ", compressedShape)}], expected [{rows}, kept columns].");
        int keptCols = (int)compressedShape[1], size = DTypeInfo.SizeOf(type);
        if (compressed.Length != (long)rows * keptCols * size)
            throw new InvalidDataException($"{where}.{CompressedSuffix}: {compressed.Length} bytes do not fill [{rows}, {keptCols}] of {type}.");
        var dense = new byte[(long)rows * cols * size];
        for (int r = 0; r < rows; r++)
        {
            var rowMask = bitmask.Slice(r * maskBytes, maskBytes);
            var rowValues = compressed.Slice(r * keptCols * size, keptCols * size);
            var rowDense = dense.AsSpan(r * cols * size, cols * size);
            int next = 0;
            for (int c = 0; c < cols; c++)
            {
                if ((rowMask[c >> 3] >> (c & 7) & 1) == 0) continue;
                if (next == keptCols)
                    throw new InvalidDataException($"{where}.{BitmaskSuffix}: row {r} marks more than the {keptCols} stored values.");
                rowValues.Slice(next * size, size).CopyTo(rowDense.Slice(c * size, size));
                next++;
            }
            if (next != keptCols)
                throw new InvalidDataException($"{where}.{BitmaskSuffix}: row {r} marks {next} values, {where}.{CompressedSuffix} stores {keptCols}.");
        }
        return dense;
    }

    private static bool Before(ReadOnlySpan<float> magnitude, int a, int b) => magnitude[a] > magnitude[b] || (magnitude[a] == magnitude[b] && a < b);
}
