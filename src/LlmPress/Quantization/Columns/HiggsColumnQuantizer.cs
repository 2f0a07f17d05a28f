namespace LlmPress.Quantization;

/// <summary>
/// The HIGGS <see cref="ColumnQuantizer"/>: works on the rotated matrix; one RMS scale per (row, rotation block), and
/// p columns at a time as p-dimensional vectors.
/// </summary>
internal sealed class HiggsColumnQuantizer : ColumnQuantizer
{
    private readonly HiggsGrid _grid;
    private readonly float[][] _scales; // [block][row]
    private readonly byte[] _codes;     // [Columns / p, Rows]
    private readonly float[] _ux, _uy;  // [Rows] scratch

    public HiggsColumnQuantizer(QuantFormat format, int rows, int cols) : base(format, rows, cols)
    {
        _grid = HiggsGrid.Get(format.HiggsDimension, format.HiggsGridSize);
        _scales = new float[GroupCount][];
        for (int g = 0; g < GroupCount; g++) _scales[g] = new float[rows];
        _codes = new byte[(long)(Columns / ColumnsPerStep) * rows];
        _ux = new float[rows];
        _uy = new float[rows];
    }

    private protected override void ComputeGroupCore(int groupIndex, ReadOnlySpan<float> weights, int rowStride, int width)
    {
        float[] scales = _scales[groupIndex];
        var format = Format;
        RowParallel.For(weights, Rows, (matrix, first, count) =>
        {
            for (int r = first; r < first + count; r++)
                scales[r] = HiggsFormat.ComputeScale(matrix.Slice(r * rowStride, width), format, r, groupIndex);
        });
    }

    private protected override void QuantizeColumnsCore(int column, int groupIndex, ReadOnlySpan<float> values, Span<float> dequantized)
    {
        int rows = Rows, p = ColumnsPerStep;
        float[] scales = _scales[groupIndex];
        HiggsFormat.Normalize(values[..rows], scales, _ux, vectorized: true);
        if (p == 2) HiggsFormat.Normalize(values.Slice(rows, rows), scales, _uy, vectorized: true);
        var codes = _codes.AsSpan(column / p * rows, rows);
        _grid.Nearest(_ux, p == 2 ? _uy : default, codes, vectorized: true);
        var points = _grid.Points;
        for (int k = 0; k < p; k++)
            for (int r = 0; r < rows; r++)
                dequantized[k * rows + r] = points[codes[r] * p + k] * scales[r];
    }

    private protected override PackedWeight BuildCore()
    {
        int rows = Rows, p = ColumnsPerStep;
        int vectorsPerRow = Columns / p;
        int rowBytes = BitPacking.PackedLength(vectorsPerRow, Format.CodeBits);
        int scalesPerRow = Columns / Format.HiggsScaleColumns, scalesPerBlock = GroupSize / Format.HiggsScaleColumns;
        var qweight = new byte[(long)rows * rowBytes];
        var scales = new Half[(long)rows * scalesPerRow];
        var rowCodes = new byte[vectorsPerRow];
        for (int r = 0; r < rows; r++)
        {
            GatherRow(_codes, rows, r, rowCodes);
            BitPacking.Pack(rowCodes, Format.CodeBits, qweight.AsSpan(r * rowBytes, rowBytes));
            for (int g = 0; g < GroupCount; g++)
                scales.AsSpan(r * scalesPerRow + g * scalesPerBlock, scalesPerBlock).Fill((Half)_scales[g][r]);
        }
        return HiggsFormat.Build(Format, rows, Cols, qweight, scales, _grid);
    }
}
