using LlmPress.Numerics;

namespace LlmPress.Export;

/// <summary>
/// compressed-tensors' int32 packing (pack_to_int32 / unpack_from_int32 in
/// compressed_tensors/compressors/quantized_compressors/pack_quantized.py): 32/b unsigned b-bit values per int32,
/// value i of a word in bits [i·b, i·b + b) (the first value in the least significant bits), the last word of a line
/// zero-padded. Signed codes are stored offset by 2^(b−1), so an LlmPress INT code (unsigned, zero point 2^(b−1) when
/// symmetric) is stored as it is.
/// </summary>
public static class CompressedTensorsPacking
{
    /// <summary>Values per int32 word: 32 / <paramref name="bits"/> (8 for INT4, 4 for INT8).</summary>
    public static int PackFactor(int bits) => bits is 4 or 8 ? 32 / bits : throw new ArgumentOutOfRangeException(nameof(bits), bits, "compressed-tensors packs 4- or 8-bit values.");

    /// <summary>Words per line of <paramref name="count"/> values: ceil(count / PackFactor).</summary>
    public static int WordCount(int count, int bits) => (count + PackFactor(bits) - 1) / PackFactor(bits);

    /// <summary>Packs one line of unsigned <paramref name="bits"/>-bit values into ceil(count/f) words (padding zero).</summary>
    public static void PackLine(ReadOnlySpan<byte> values, int bits, Span<int> words)
    {
        int f = PackFactor(bits), mask = (1 << bits) - 1;
        if (words.Length != WordCount(values.Length, bits)) throw new ArgumentException($"{values.Length} values need {WordCount(values.Length, bits)} words, not {words.Length}.", nameof(words));
        words.Clear();
        for (int c = 0; c < values.Length; c++) words[c / f] |= (values[c] & mask) << (c % f * bits);
    }

    /// <summary>Inverse of <see cref="PackLine"/>: the first values.Length values of <paramref name="words"/>.</summary>
    public static void UnpackLine(ReadOnlySpan<int> words, int bits, Span<byte> values)
    {
        int f = PackFactor(bits), mask = (1 << bits) - 1;
        if (words.Length != WordCount(values.Length, bits)) throw new ArgumentException($"{values.Length} values need {WordCount(values.Length, bits)} words, not {words.Length}.", nameof(words));
        for (int c = 0; c < values.Length; c++) values[c] = (byte)((words[c / f] >>> (c % f * bits)) & mask);
    }

    /// <summary>
    /// Packs each row of <paramref name="values"/> [rows, cols] along the columns (packed_dim = 1, the weight's input
    /// dimension): result [rows, ceil(cols/f)]. Rows in parallel (each row's words depend on that row only).
    /// </summary>
    public static int[] PackRows(byte[] values, int rows, int cols, int bits)
    {
        ArgumentNullException.ThrowIfNull(values);
        CheckLength(values.Length, rows, cols);
        int words = WordCount(cols, bits);
        var packed = new int[(long)rows * words];
        Parallel.For(0, rows, Parallelism.Options, r => PackLine(values.AsSpan(r * cols, cols), bits, packed.AsSpan(r * words, words)));
        return packed;
    }

    /// <summary>
    /// Packs <paramref name="values"/> [rows, cols] along the rows (packed_dim = 0, the output dimension, as the
    /// asymmetric zero points are): result [ceil(rows/f), cols], word (w, c) holding rows w·f … w·f + f − 1 of column c.
    /// </summary>
    public static int[] PackColumns(ReadOnlySpan<byte> values, int rows, int cols, int bits)
    {
        CheckLength(values.Length, rows, cols);
        int f = PackFactor(bits), mask = (1 << bits) - 1;
        var packed = new int[(long)WordCount(rows, bits) * cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                packed[(long)(r / f) * cols + c] |= (values[r * cols + c] & mask) << (r % f * bits);
        return packed;
    }

    /// <summary>Inverse of <see cref="PackRows"/>: the unsigned values [rows, cols] (padding dropped).</summary>
    public static byte[] UnpackRows(int[] packed, int rows, int cols, int bits)
    {
        ArgumentNullException.ThrowIfNull(packed);
        int words = WordCount(cols, bits);
        CheckLength(packed.Length, rows, words);
        var values = new byte[(long)rows * cols];
        Parallel.For(0, rows, Parallelism.Options, r => UnpackLine(packed.AsSpan(r * words, words), bits, values.AsSpan(r * cols, cols)));
        return values;
    }

    /// <summary>Inverse of <see cref="PackColumns"/>: the unsigned values [rows, cols] (padding dropped).</summary>
    public static byte[] UnpackColumns(ReadOnlySpan<int> packed, int rows, int cols, int bits)
    {
        int f = PackFactor(bits), mask = (1 << bits) - 1;
        CheckLength(packed.Length, WordCount(rows, bits), cols);
        var values = new byte[(long)rows * cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                values[r * cols + c] = (byte)((packed[(r / f) * cols + c] >>> (r % f * bits)) & mask);
        return values;
    }

    private static void CheckLength(long length, int rows, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        if (length != (long)rows * cols) throw new ArgumentException($"Expected {rows}·{cols} = {(long)rows * cols} elements, got {length}.");
    }
}
