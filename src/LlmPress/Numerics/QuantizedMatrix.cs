namespace LlmPress.Numerics;

/// <summary>
/// A weight matrix kept in a low-bit form that the packed kernels multiply directly (<see cref="Gemm.MultiplyByQuantized"/>),
/// in the Hugging Face [rows = out features, cols = in features] layout:
/// <code>
///   W[r, c] = scale[r, g] · (level(code[r, c]) − zero[r, g]),   g = c / GroupSize
///   4-bit: level = Levels[code], the code of column 2j in the low nibble of byte j of the row, 2j + 1 in the high one
///          (INT4: levels 0..15 with a zero point; MXFP4/NVFP4: the 16 E2M1 values, zero 0)
///   8-bit: level = code (INT8 with a zero point)
/// </code>
/// Scales and zero points are FP32 per (row, group), decoded once at load from whatever the checkpoint stores (FP16
/// for INT), so the kernels need no per-format decoding. MXFP4's E8M0 and NVFP4's E4M3 scales stay one byte per group
/// (<see cref="ScaleCodes"/>): as FP32 they were a third of an NVFP4 matrix, read again by every decode step. Kernels
/// decode a row range's scales into a small buffer in registers (<see cref="Kernels.ScaleCodeDecoder"/>) before its rows.
/// </summary>
/// <remarks>
/// The fast kernels take 32 columns at a time, so a 32-column chunk may not straddle a group boundary — except for
/// groups of 16 (NVFP4), which the kernels handle as two half-vectors. <see cref="IsSupportedGrouping"/> says which
/// shapes qualify; others stay dequantized.
/// </remarks>
public sealed class QuantizedMatrix
{
    /// <param name="rows">Output features.</param>
    /// <param name="cols">Input features as stored (a rotating format's padded width).</param>
    /// <param name="bits">4 or 8.</param>
    /// <param name="groupSize">Columns per scale (≥ cols: one group per row).</param>
    /// <param name="codes">[rows, cols·bits/8 rounded up] bytes.</param>
    /// <param name="levels">4-bit: the 16 levels; 8-bit: null.</param>
    /// <param name="scales">[rows, groups].</param>
    /// <param name="zeros">[rows, groups], or null for all-zero.</param>
    /// <exception cref="ArgumentException">Inconsistent sizes, an unsupported grouping, or a non-finite scale, zero or level.</exception>
    public QuantizedMatrix(int rows, int cols, int bits, int groupSize, byte[] codes, float[]? levels, float[] scales, float[]? zeros)
        : this(rows, cols, bits, groupSize, codes, levels, scales ?? throw new ArgumentNullException(nameof(scales)), null, default, 1f, zeros)
    {
    }

    /// <summary>
    /// A matrix whose scales are kept as one code byte per (row, group), no zero points: scale = 2^(code − 127)
    /// (<see cref="ScaleCoding.E8M0"/>, MXFP4) or E4M3(code) ÷ <paramref name="divisor"/> (<see cref="ScaleCoding.E4M3"/>,
    /// NVFP4 with its global scale).
    /// </summary>
    /// <param name="scaleCodes">[rows, groups] bytes; none may decode to NaN.</param>
    public QuantizedMatrix(int rows, int cols, int bits, int groupSize, byte[] codes, float[]? levels, byte[] scaleCodes, ScaleCoding coding,
        float divisor = 1f)
        : this(rows, cols, bits, groupSize, codes, levels, null, scaleCodes ?? throw new ArgumentNullException(nameof(scaleCodes)),
            coding, divisor, null)
    {
    }

    private QuantizedMatrix(int rows, int cols, int bits, int groupSize, byte[] codes, float[]? levels, float[]? scales,
        byte[]? scaleCodes, ScaleCoding coding, float divisor, float[]? zeros)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(groupSize);
        ArgumentNullException.ThrowIfNull(codes);
        if (bits is not (4 or 8)) throw new ArgumentException($"Packed kernels take 4- or 8-bit codes, not {bits}-bit.", nameof(bits));
        if (!IsSupportedGrouping(bits, cols, groupSize))
            throw new ArgumentException($"Groups of {groupSize} over {cols} columns do not align with the {bits}-bit kernels' column chunks.", nameof(groupSize));
        int rowBytes = bits == 4 ? (cols + 1) / 2 : cols;
        int groups = (cols + groupSize - 1) / groupSize;
        if (codes.Length != (long)rows * rowBytes) throw new ArgumentException($"codes has {codes.Length} bytes, not [{rows}, {rowBytes}].", nameof(codes));
        if (scales is not null && scales.Length != (long)rows * groups) throw new ArgumentException($"scales has {scales.Length} values, not [{rows}, {groups}].", nameof(scales));
        if (scaleCodes is not null && scaleCodes.Length != (long)rows * groups) throw new ArgumentException($"scaleCodes has {scaleCodes.Length} bytes, not [{rows}, {groups}].", nameof(scaleCodes));
        if (zeros is not null && zeros.Length != (long)rows * groups) throw new ArgumentException($"zeros has {zeros.Length} values, not [{rows}, {groups}].", nameof(zeros));
        if (bits == 4 && levels?.Length != 16) throw new ArgumentException("4-bit codes need 16 levels.", nameof(levels));
        if (bits == 8 && levels is not null) throw new ArgumentException("8-bit codes are their own levels; pass null.", nameof(levels));
        if (scales is not null) CheckFinite(scales, nameof(scales));
        Kernels.ScaleCodeTable? scaleTable = null;
        if (scaleCodes is not null)
        {
            if (!float.IsFinite(divisor) || divisor == 0) throw new ArgumentException($"The scale divisor is {divisor}.", nameof(divisor));
            scaleTable = new Kernels.ScaleCodeTable(coding, divisor);
            foreach (byte code in scaleCodes)
                if (!float.IsFinite(scaleTable[code])) throw new ArgumentException($"Scale code {code} decodes to {scaleTable[code]}, not finite.", nameof(scaleCodes));
        }
        if (zeros is not null) CheckFinite(zeros, nameof(zeros));
        if (levels is not null) CheckFinite(levels, nameof(levels));
        Rows = rows;
        Cols = cols;
        Bits = bits;
        GroupSize = Math.Min(groupSize, cols);
        Groups = groups;
        RowBytes = rowBytes;
        Codes = codes;
        Levels = levels;
        LevelsAreCodes = bits == 8 || IsIdentity(levels!);
        ByteLevels = bits == 4 ? Kernels.ByteLevels.From(levels!) : null;
        Scales = scales;
        ScaleCodes = scaleCodes;
        ScaleTable = scaleTable;
        Zeros = zeros;
    }

    public int Rows { get; }
    public int Cols { get; }
    public int Bits { get; }
    public int GroupSize { get; }
    public int Groups { get; }
    /// <summary>Bytes of codes per row.</summary>
    public int RowBytes { get; }
    public byte[] Codes { get; }
    public float[]? Levels { get; }
    /// <summary>FP32 scales [rows, groups], or null when they are kept as <see cref="ScaleCodes"/>.</summary>
    public float[]? Scales { get; }

    /// <summary>One code byte per (row, group), [rows, groups], whose FP32 scale is <see cref="ScaleTable"/>[code]; or null (FP32 <see cref="Scales"/>).</summary>
    public byte[]? ScaleCodes { get; }

    /// <summary>The FP32 scale of each of the 256 codes, with <see cref="ScaleCodes"/>.</summary>
    internal Kernels.ScaleCodeTable? ScaleTable { get; }

    /// <summary>How <see cref="ScaleCodes"/> decode (with them only).</summary>
    public ScaleCoding ScaleCoding => ScaleTable?.Coding ?? default;

    /// <summary>The E4M3 scales' divisor (NVFP4's global scale); 1 otherwise.</summary>
    public float ScaleDivisor => ScaleTable?.Divisor ?? 1f;
    public float[]? Zeros { get; }

    /// <summary>True when level(code) = code (INT4 levels 0..15, or 8-bit): the kernels convert codes instead of looking them up.</summary>
    public bool LevelsAreCodes { get; }

    /// <summary>4-bit levels as small bytes for the integer-dot decode kernel, or null when they are not small integers up to a power-of-two factor.</summary>
    internal Kernels.ByteLevels? ByteLevels { get; }

    private static bool IsIdentity(float[] levels)
    {
        for (int i = 0; i < levels.Length; i++)
            if (levels[i] != i) return false;
        return true;
    }

    /// <summary>Bytes held (codes, scales, zero points, levels).</summary>
    public long MemoryBytes => Codes.LongLength + (ScaleCodes?.LongLength ?? 0) + (ScaleTable?.MemoryBytes ?? 0)
        + 4L * ((Scales?.LongLength ?? 0) + (Zeros?.LongLength ?? 0) + (Levels?.Length ?? 0));

    /// <summary>The FP32 scale of (row, group), however it is stored.</summary>
    public float Scale(int row, int group)
    {
        long i = (long)row * Groups + group;
        return Scales is { } scales ? scales[i] : ScaleTable![ScaleCodes![i]];
    }

    /// <summary>
    /// For a kernel over rows [r0, r1): the rows' FP32 scales, row r's at <see cref="RowScales.Values"/>[r·Groups −
    /// <see cref="RowScales.FirstIndex"/>]. FP32 scales are returned as they are; scale codes are decoded for those
    /// rows into an array from the shared pool (16 entries longer, so vector reads of a last partial group stay
    /// inside), given back on dispose.
    /// </summary>
    internal RowScales GetRowScales(int r0, int r1)
    {
        if (Scales is { } scales) return new RowScales(scales, 0, rented: false);
        int count = (r1 - r0) * Groups;
        var decoded = System.Buffers.ArrayPool<float>.Shared.Rent(count + 16);
        Kernels.ScaleCodeDecoder.Decode(ScaleCodes.AsSpan(r0 * Groups, count), ScaleTable!, decoded.AsSpan(0, count));
        return new RowScales(decoded, (nint)r0 * Groups, rented: true);
    }

    /// <summary>A kernel's row range of FP32 scales (<see cref="GetRowScales"/>); dispose to give back a decoded array.</summary>
    internal readonly ref struct RowScales(float[] values, nint firstIndex, bool rented)
    {
        public float[] Values { get; } = values;

        /// <summary>The index row r0's first scale would have in the whole matrix's [rows, groups] scales.</summary>
        public nint FirstIndex { get; } = firstIndex;

        public void Dispose()
        {
            if (rented) System.Buffers.ArrayPool<float>.Shared.Return(Values);
        }
    }

    /// <summary>
    /// True when no 32-column chunk (16 for 8-bit) straddles a group boundary, or the groups have 16 columns (4-bit).
    /// </summary>
    public static bool IsSupportedGrouping(int bits, int cols, int groupSize) =>
        groupSize >= cols || groupSize % (bits == 4 ? 32 : 16) == 0 || (bits == 4 && groupSize == 16);

    /// <summary>W[row, col], computed as the kernels do: scale · (level − zero).</summary>
    public float this[int row, int col]
    {
        get
        {
            if ((uint)row >= (uint)Rows || (uint)col >= (uint)Cols) throw new ArgumentOutOfRangeException(nameof(col), $"({row}, {col}) is outside [{Rows}, {Cols}].");
            int g = row * Groups + col / GroupSize;
            return Scale(row, col / GroupSize) * (Level(row, col) - (Zeros?[g] ?? 0f));
        }
    }

    /// <summary>Row <paramref name="row"/> as FP32 ([Cols]), the scalar reference of the kernels' decoding.</summary>
    public void DequantizeRow(int row, Span<float> destination)
    {
        if ((uint)row >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(row));
        var dst = destination[..Cols];
        for (int c = 0; c < Cols; c++)
        {
            int g = row * Groups + c / GroupSize;
            dst[c] = Scale(row, c / GroupSize) * (Level(row, c) - (Zeros?[g] ?? 0f));
        }
    }

    /// <summary>The whole matrix as FP32 [Rows, Cols].</summary>
    public float[] Dequantize()
    {
        var result = new float[(long)Rows * Cols];
        for (int r = 0; r < Rows; r++) DequantizeRow(r, result.AsSpan(r * Cols, Cols));
        return result;
    }

    private float Level(int row, int col)
    {
        if (Bits == 8) return Codes[(long)row * RowBytes + col];
        byte b = Codes[(long)row * RowBytes + col / 2];
        return Levels![(col & 1) == 0 ? b & 15 : b >> 4];
    }

    private static void CheckFinite(float[] values, string name)
    {
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i])) throw new ArgumentException($"{name}[{i}] is {values[i]}, not finite.", name);
    }
}
