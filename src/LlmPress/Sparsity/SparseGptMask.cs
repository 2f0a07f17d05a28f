namespace LlmPress.Sparsity;

/// <summary>
/// The pruning step SparseGPT adds to GPTQ's block loop (<see cref="Quantization.Gptq.RunBlocks"/>): which rows of each
/// column are pruned, chosen on the current (error-updated) weights by OBS saliency w²/Uⱼⱼ² (U the upper Cholesky factor
/// of H⁻¹, so Uⱼⱼ² = [H_F⁻¹]ⱼⱼ for the columns F = j.. not yet processed), and the column with those rows set to 0.
/// </summary>
/// <remarks>
/// Works on GPTQ's transposed layout: wt and the mask are [columns, rows], u is [columns, columns]. Unstructured: at each
/// block start, the block's smallest saliencies, as many as make the running total round(fraction·rows·blockEnd) (so
/// the layer total is exactly <see cref="SparsityPattern.ZeroCount"/>); ties go to the lower row-major index (row, then
/// column). N:M: at each column j with j % M == 0, each row's N smallest of columns [j, j + M) (the block size is a
/// multiple of M, so a group never leaves the block whose columns are current). A fixed mask skips selection.
/// No allocation per column or block: all scratch is sized once.
/// </remarks>
internal sealed class SparseGptMask
{
    private readonly int _rows, _columns;
    private readonly SparsityPattern _pattern;
    private readonly bool _fixed;
    private readonly bool[] _prunedT;   // [columns, rows]
    private readonly float[] _masked;   // [rows], the current column with its pruned rows set to 0
    private readonly float[] _scores;   // [rows, width] of a block (unstructured) or [rows, M] (N:M), row-major
    private readonly bool[] _selected;  // like _scores
    private readonly ulong[] _keys;     // sort keys for MaskSelection.MarkSmallest
    private long _prunedSoFar;

    /// <param name="rows">Output features.</param>
    /// <param name="columns">Input features.</param>
    /// <param name="pattern">What to prune (ignored with a fixed mask).</param>
    /// <param name="blockSize">The loop's block size (a multiple of M for N:M).</param>
    /// <param name="fixedMask">[rows, cols] mask to apply instead of choosing one, or null.</param>
    public SparseGptMask(int rows, int columns, SparsityPattern pattern, int blockSize, bool[]? fixedMask)
    {
        _rows = rows;
        _columns = columns;
        _pattern = pattern;
        _prunedT = new bool[(long)columns * rows];
        _masked = new float[rows];
        if (fixedMask is not null)
        {
            _fixed = true;
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < columns; c++) _prunedT[(long)c * rows + r] = fixedMask[(long)r * columns + c];
            _scores = [];
            _selected = [];
            _keys = [];
            return;
        }
        int width = pattern.IsNOfM ? pattern.M : Math.Min(blockSize, columns);
        _scores = new float[(long)rows * width];
        _selected = new bool[(long)rows * width];
        _keys = pattern.IsNOfM ? [] : new ulong[(long)rows * width];
    }

    /// <summary>The mask, [columns, rows] (transposed), complete after the loop.</summary>
    public bool[] PrunedTransposed => _prunedT;

    /// <summary>Unstructured: chooses block [i1, i2)'s pruned weights from its current columns in wt.</summary>
    public void BeginBlock(int i1, int i2, float[] wt, float[] u)
    {
        if (_fixed || _pattern.IsNOfM || _pattern.Fraction == 0) return;
        int rows = _rows, width = i2 - i1;
        long target = (long)Math.Round(_pattern.Fraction * rows * (double)i2, MidpointRounding.ToEven) - _prunedSoFar;
        target = Math.Clamp(target, 0, (long)rows * width);
        Saliencies(i1, width, wt, u);
        var selected = _selected.AsSpan(0, rows * width);
        selected.Clear();
        MaskSelection.MarkSmallest(_scores.AsSpan(0, rows * width), target, selected, _keys);
        for (int k = 0; k < width; k++)
        {
            var mask = _prunedT.AsSpan((i1 + k) * rows, rows);
            for (int r = 0; r < rows; r++) mask[r] = selected[r * width + k];
        }
        _prunedSoFar += target;
    }

    /// <summary>
    /// N:M: chooses the group starting at column j first. Returns column j of wt with its pruned rows set to 0 (a view of
    /// scratch, valid until the next call).
    /// </summary>
    public ReadOnlySpan<float> Apply(int j, float[] wt, float[] u)
    {
        int rows = _rows;
        if (!_fixed && _pattern.IsNOfM && j % _pattern.M == 0) SelectGroup(j, wt, u);
        var w = wt.AsSpan(j * rows, rows);
        var mask = _prunedT.AsSpan(j * rows, rows);
        for (int r = 0; r < rows; r++) _masked[r] = mask[r] ? 0f : w[r];
        return _masked;
    }

    // OBS saliency w²/U_jj² of columns [first, first + width) (act positions), into _scores as [rows, width].
    private void Saliencies(int first, int width, float[] wt, float[] u)
    {
        int rows = _rows;
        for (int k = 0; k < width; k++)
        {
            float d = u[(long)(first + k) * _columns + first + k];
            float d2 = d * d;
            var column = wt.AsSpan((first + k) * rows, rows);
            for (int r = 0; r < rows; r++) _scores[r * width + k] = column[r] * column[r] / d2;
        }
    }

    private void SelectGroup(int j, float[] wt, float[] u)
    {
        int rows = _rows, m = _pattern.M;
        Saliencies(j, m, wt, u);
        var selected = _selected.AsSpan(0, rows * m);
        selected.Clear();
        MaskSelection.MarkNOfM(_scores.AsSpan(0, rows * m), _pattern.N, m, selected);
        for (int k = 0; k < m; k++)
        {
            var mask = _prunedT.AsSpan((j + k) * rows, rows);
            for (int r = 0; r < rows; r++) mask[r] = selected[r * m + k];
        }
    }
}
