namespace LlmPress.Quantization;

/// <summary>
/// Column-by-column quantization of one weight matrix, the interface GPTQ-style methods drive.
/// </summary>
/// <remarks>
/// <para>
/// The matrix is the stored-basis one, [<see cref="Rows"/>, <see cref="Columns"/>] (see <see cref="QuantFormat.ToStoredBasis"/>:
/// for rotating formats — HIGGS, or MR-GPTQ with a rotation block — GPTQ runs entirely in the rotated basis, with the
/// Hessian of rotated inputs; rotating activations online at inference is the model's job). Columns are grouped along
/// the input dimension: group k is columns [k·GroupSize, min((k + 1)·GroupSize, Columns)), and its scale parameters
/// (per row) must be set before any of its columns is quantized, in one of two ways:
/// </para>
/// <list type="bullet">
/// <item>Dynamic groups (gptq.py's default): when the loop reaches a group's first column, call
/// <see cref="ComputeGroupParameters"/> with the CURRENT, error-updated weights of that group's columns. (gptq.py passes
/// its W, whose columns past the current 128-column block have not yet received that block's updates; pass whichever
/// values your algorithm defines as current.)</item>
/// <item>Static groups (for act-order, and MR-GPTQ): call <see cref="ComputeAllGroupParameters"/> once with the
/// original matrix before the loop; columns may then be quantized in any order (a permutation), each with the
/// parameters of the group of its original position.</item>
/// </list>
/// <para>
/// Then, for each column j (or each step of <see cref="ColumnsPerStep"/> columns for HIGGS p = 2, which quantizes pairs
/// of columns as 2-D vectors: j must be a multiple of p, and act-order must keep the pairs together), call
/// <see cref="QuantizeColumns"/> with the column's current values; it stores the codes and returns the dequantized values
/// q, from which GPTQ takes its error (w − q)/d. The returned values are bit-identical to what the packed result
/// dequantizes to (<see cref="PackedWeight.DequantizeStored()"/>). After every column is done, <see cref="Build"/> packs the matrix.
/// </para>
/// <code>
/// var stored = format.ToStoredBasis(W, rows, cols);          // [rows, C], C = format.StoredColumns(cols)
/// var q = format.CreateColumnQuantizer(rows, cols, stored);
/// for (int j = 0; j &lt; C; j += q.ColumnsPerStep)
/// {
///     if (j % q.GroupSize == 0) q.ComputeGroupParameters(j / q.GroupSize, stored.AsSpan(j), rowStride: C);
///     gather columns j..j+step−1 of the current W into w ([step, rows]);
///     q.QuantizeColumns(j, w, dq);                            // dq: [step, rows]
///     err = (w − dq) / d; update the remaining columns of W   // the OBS update
/// }
/// PackedWeight packed = q.Build();
/// </code>
/// <para>
/// Without error feedback this is exactly round-to-nearest: the result is bit-identical to <see cref="QuantFormat.Quantize"/>.
/// Parameter computation is parallel over rows; results never depend on the thread count. Instances are not thread-safe.
/// </para>
/// </remarks>
public abstract class ColumnQuantizer
{
    private readonly bool[] _groupReady;
    private readonly int[] _groupColumnsDone;
    private readonly bool[] _columnDone;
    private int _columnsDone;

    private protected ColumnQuantizer(QuantFormat format, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(format);
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        Format = format;
        Rows = rows;
        Cols = cols;
        Columns = format.StoredColumns(cols);
        GroupSize = format.EffectiveGroupSize(cols);
        GroupCount = format.GroupCount(cols);
        ColumnsPerStep = format.ColumnsPerStep;
        _groupReady = new bool[GroupCount];
        _groupColumnsDone = new int[GroupCount];
        _columnDone = new bool[Columns];
    }

    public QuantFormat Format { get; }

    /// <summary>Output features.</summary>
    public int Rows { get; }

    /// <summary>Input features of the original matrix.</summary>
    public int Cols { get; }

    /// <summary>Columns of the stored-basis matrix being quantized (Cols padded to the rotation block).</summary>
    public int Columns { get; }

    /// <summary>Columns per group (along the input dimension); the last group may be shorter.</summary>
    public int GroupSize { get; }

    /// <summary>Number of groups.</summary>
    public int GroupCount { get; }

    /// <summary>Columns quantized jointly by one <see cref="QuantizeColumns"/> call: HIGGS' p, else 1.</summary>
    public int ColumnsPerStep { get; }

    /// <summary>The group of a stored column.</summary>
    public int GroupOf(int column) => column / GroupSize;

    /// <summary>Columns in group <paramref name="groupIndex"/>.</summary>
    public int GroupWidth(int groupIndex) => Math.Min(GroupSize, Columns - groupIndex * GroupSize);

    /// <summary>Whether group <paramref name="groupIndex"/>'s parameters are set.</summary>
    public bool IsGroupReady(int groupIndex) => _groupReady[groupIndex];

    /// <summary>
    /// Computes group <paramref name="groupIndex"/>'s scale parameters for every row from the weights given: row r's
    /// values of the group's columns are weights[r·rowStride + c] for c in [0, GroupWidth). Pass the full current matrix
    /// offset to the group's first column (W.AsSpan(groupIndex·GroupSize), rowStride = Columns) or a compact [Rows, width]
    /// block (rowStride = width). May be called again for a group as long as none of its columns is quantized.
    /// </summary>
    /// <exception cref="ArgumentException">The span is too short, or a value is NaN/∞ (the message names row and column).</exception>
    /// <exception cref="InvalidOperationException">The group already has quantized columns.</exception>
    public void ComputeGroupParameters(int groupIndex, ReadOnlySpan<float> weights, int rowStride)
    {
        if ((uint)groupIndex >= (uint)GroupCount) QuantThrow.ArgumentOutOfRange_Group(Format, groupIndex, GroupCount);
        if (_groupColumnsDone[groupIndex] > 0) QuantThrow.InvalidOperation_GroupStarted(Format, groupIndex);
        int width = GroupWidth(groupIndex);
        ArgumentOutOfRangeException.ThrowIfLessThan(rowStride, width);
        long needed = Rows == 0 ? 0 : (long)(Rows - 1) * rowStride + width;
        if (weights.Length < needed) QuantThrow.Argument_GroupSpan(Format, groupIndex, needed, weights.Length, rowStride, width);
        for (int r = 0; r < Rows; r++)
        {
            var row = weights.Slice(r * rowStride, width);
            int bad = GroupRange.IndexOfNonFinite(row);
            if (bad >= 0) QuantThrow.Argument_NonFinite(Format, r, groupIndex * GroupSize + bad, row[bad]);
        }
        ComputeGroupCore(groupIndex, weights, rowStride, width);
        _groupReady[groupIndex] = true;
    }

    /// <summary>Static groups: every group's parameters from <paramref name="weights"/>, the original stored-basis matrix [Rows, Columns].</summary>
    public void ComputeAllGroupParameters(ReadOnlySpan<float> weights)
    {
        if (weights.Length != (long)Rows * Columns) QuantThrow.Argument_MatrixLength(Format, Rows, Columns, weights.Length);
        for (int g = 0; g < GroupCount; g++) ComputeGroupParameters(g, weights[(g * GroupSize)..], Columns);
    }

    /// <summary>
    /// Quantizes stored columns [column, column + ColumnsPerStep) with their group's parameters, keeps the codes and
    /// writes the dequantized values.
    /// </summary>
    /// <param name="column">The first column; a multiple of <see cref="ColumnsPerStep"/>.</param>
    /// <param name="values">The columns' current values, [ColumnsPerStep, Rows] (column after column).</param>
    /// <param name="dequantized">Receives the dequantized values, [ColumnsPerStep, Rows].</param>
    /// <exception cref="InvalidOperationException">The group's parameters are not set, or a column was already quantized.</exception>
    /// <exception cref="ArgumentException">Wrong lengths or column, or a NaN/∞ value.</exception>
    public void QuantizeColumns(int column, ReadOnlySpan<float> values, Span<float> dequantized)
    {
        int step = ColumnsPerStep;
        if ((uint)column >= (uint)Columns || column % step != 0) QuantThrow.ArgumentOutOfRange_Column(Format, column, Columns, step);
        int group = GroupOf(column);
        if (!_groupReady[group]) QuantThrow.InvalidOperation_GroupNotReady(Format, column, group);
        if (_columnDone[column]) QuantThrow.InvalidOperation_ColumnTwice(Format, column);
        if (values.Length != step * Rows) QuantThrow.Argument_ColumnSpan(Format, nameof(values), step * Rows, values.Length);
        if (dequantized.Length != step * Rows) QuantThrow.Argument_ColumnSpan(Format, nameof(dequantized), step * Rows, dequantized.Length);
        int bad = GroupRange.IndexOfNonFinite(values);
        if (bad >= 0) QuantThrow.Argument_NonFinite(Format, bad % Math.Max(Rows, 1), column + bad / Math.Max(Rows, 1), values[bad]);
        QuantizeColumnsCore(column, group, values, dequantized);
        for (int k = 0; k < step; k++) _columnDone[column + k] = true;
        _groupColumnsDone[group] += step;
        _columnsDone += step;
    }

    /// <summary>Convenience for one column (<see cref="ColumnsPerStep"/> = 1).</summary>
    public void QuantizeColumn(int column, ReadOnlySpan<float> values, Span<float> dequantized) =>
        QuantizeColumns(column, values, dequantized);

    /// <summary>The packed matrix; every column must have been quantized.</summary>
    public PackedWeight Build()
    {
        if (_columnsDone != Columns)
            QuantThrow.InvalidOperation_ColumnsMissing(Format, Columns - _columnsDone, Array.IndexOf(_columnDone, false));
        return BuildCore();
    }

    // weights: row r at [r·rowStride, r·rowStride + width), validated
    private protected abstract void ComputeGroupCore(int groupIndex, ReadOnlySpan<float> weights, int rowStride, int width);

    // values, dequantized: [ColumnsPerStep, Rows], validated
    private protected abstract void QuantizeColumnsCore(int column, int groupIndex, ReadOnlySpan<float> values, Span<float> dequantized);

    private protected abstract PackedWeight BuildCore();

    // Codes are kept column-major ([Columns / step, Rows]) while quantizing; this gives row r's codes in column order.
    private protected static void GatherRow(byte[] columnMajor, int rows, int row, Span<byte> destination)
    {
        for (int k = 0; k < destination.Length; k++) destination[k] = columnMajor[(long)k * rows + row];
    }
}
