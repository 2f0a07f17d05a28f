using System.Diagnostics;
using System.Numerics.Tensors;
using LlmPress.Numerics;
using LlmPress.Sparsity;

namespace LlmPress.Quantization;

// The column side of GPTQ: the lazy-batch block loop on the transposed weights.
public static partial class Gptq
{
    // Step 5 over all blocks of blockSize columns (act-order positions): for each column (or HIGGS pair), dynamic group
    // scales when a group starts, q = quantize(w), then the OBS update inside the block; after the block one GEMM
    // updates every later column (GPTQ paper §4, "Lazy Batch-Updates"). Returns the Stopwatch ticks of the two parts.
    // SparseGPT drives the same loop with a mask (selection at block starts or N:M group starts, then the column's pruned
    // rows set to 0 before quantizing: q = quantize(mask(w))) and, to prune only, no quantizer (q = mask(w)). The error
    // (w − q)/Uⱼⱼ is always taken from the unmasked w, so a pruned weight's whole value is compensated.
    internal static (long ColumnTicks, long TrailingTicks) RunBlocks(ColumnQuantizer? quantizer, SparseGptMask? mask, int rows, int columns,
        bool staticGroups, int[]? perm, int blockSize, float[] wt, float[] qt, float[] u, double[] rowLosses, double[] columnLosses, bool parallel)
    {
        int step = quantizer?.ColumnsPerStep ?? 1, groupSize = quantizer?.GroupSize ?? columns;
        float[] err = new float[(long)blockSize * rows]; // [blockSize, rows], ε of the current block
        var groupWork = staticGroups || quantizer is null ? null : new DynamicGroupWork(rows, groupSize);
        long columnTicks = 0, trailingTicks = 0;
        for (int i1 = 0; i1 < columns; i1 += blockSize)
        {
            int i2 = Math.Min(i1 + blockSize, columns);
            long t0 = Stopwatch.GetTimestamp();
            mask?.BeginBlock(i1, i2, wt, u);
            for (int j = i1; j < i2; j += step)
            {
                int column = perm is null ? j : perm[j];
                if (groupWork is not null && column % groupSize == 0)
                    groupWork.Compute(quantizer!, column, i1, i2, columns, wt, u, err, parallel);
                ReadOnlySpan<float> values = wt.AsSpan(j * rows, step * rows);
                if (mask is not null) values = mask.Apply(j, wt, u);
                if (quantizer is null) values.CopyTo(qt.AsSpan(j * rows, rows));
                else quantizer.QuantizeColumns(column, values, qt.AsSpan(j * rows, step * rows));
                for (int s = 0; s < step; s++)
                    QuantizedColumnUpdate(j + s, i1, i2, rows, columns, wt, qt, u, err, rowLosses, columnLosses, column + s);
            }
            long t1 = Stopwatch.GetTimestamp();
            // W[:, i2..] −= E·U[i1..i2, i2..], as Wᵀ[i2.., :] −= U[i1..i2, i2..]ᵀ·E.
            if (i2 < columns)
                Gemm.Sgemm(transposeA: true, transposeB: false, columns - i2, rows, i2 - i1, -1f, u.AsSpan(i1 * columns + i2), columns,
                    err, rows, 1f, wt.AsSpan(i2 * rows), rows, parallel);
            columnTicks += t1 - t0;
            trailingTicks += Stopwatch.GetTimestamp() - t1;
        }
        return (columnTicks, trailingTicks);
    }

    // ε = (w − q)/Uⱼⱼ for position j (act-order position; stored column `column`), its loss ½ε², and the in-block update
    // W[:, j+1..i2) −= ε·U[j, j+1..i2). For the first column of a HIGGS pair this also updates the second one, whose q
    // was already fixed: that is the forward substitution ε_S = (w_S − q_S)·U_SS⁻¹ of the pair update (see remarks).
    private static void QuantizedColumnUpdate(int j, int i1, int i2, int rows, int columns, float[] wt, float[] qt, float[] u,
        float[] err, double[] rowLosses, double[] columnLosses, int column)
    {
        var w = wt.AsSpan(j * rows, rows);
        var e = err.AsSpan((j - i1) * rows, rows);
        TensorPrimitives.Subtract(w, qt.AsSpan(j * rows, rows), e);
        TensorPrimitives.Divide(e, u[(long)j * columns + j], e);
        double columnLoss = 0;
        for (int r = 0; r < rows; r++)
        {
            double l = 0.5 * e[r] * (double)e[r];
            rowLosses[r] += l;
            columnLoss += l;
        }
        columnLosses[column] += columnLoss;
        var uRow = u.AsSpan(j * columns, columns);
        for (int k = j + 1; k < i2; k++)
        {
            var target = wt.AsSpan(k * rows, rows);
            TensorPrimitives.FusedMultiplyAdd(e, -uRow[k], target, target);
        }
    }

    /// <summary>Scratch for dynamic group scales, which need the group's current weights as [rows, width].</summary>
    private sealed class DynamicGroupWork(int rows, int groupSize)
    {
        private readonly float[] _group = new float[(long)rows * groupSize]; // [rows, width]
        private float[]? _pending;                                           // [beyond, rows], allocated when first needed

        // Group of stored column j in block [i1, i2) (no act-order: position = column). Columns [j, i2) are current in
        // wt; the `beyond` columns past the block still lack the block's updates so far, E[0..j−i1)·U[i1..j, i2..end),
        // which are subtracted here (none when the group starts at the block start).
        public void Compute(ColumnQuantizer quantizer, int j, int i1, int i2, int columns, float[] wt, float[] u, float[] err, bool parallel)
        {
            int end = Math.Min(j + groupSize, columns), width = end - j;
            for (int c = 0; c < width; c++)
            {
                var source = wt.AsSpan((j + c) * rows, rows);
                for (int r = 0; r < rows; r++) _group[r * width + c] = source[r];
            }
            int beyond = end - i2;
            if (beyond > 0 && j > i1)
            {
                _pending ??= new float[(long)(groupSize - 1) * rows];
                var pending = _pending.AsSpan(0, beyond * rows);
                Gemm.Sgemm(transposeA: true, transposeB: false, beyond, rows, j - i1, 1f, u.AsSpan(i1 * columns + i2), columns,
                    err, rows, 0f, pending, rows, parallel);
                int offset = i2 - j;
                for (int c = 0; c < beyond; c++)
                {
                    var correction = pending.Slice(c * rows, rows);
                    for (int r = 0; r < rows; r++) _group[r * width + offset + c] -= correction[r];
                }
            }
            quantizer.ComputeGroupParameters(j / groupSize, _group.AsSpan(0, rows * width), width);
        }
    }

    // wt[j, r] = w[r, perm[j]]: w [rows, columns] → wt [columns, rows], in tiles.
    internal static void TransposeColumns(float[] w, int rows, int columns, int[]? perm, float[] wt)
    {
        for (int rb = 0; rb < rows; rb += Tile)
            for (int jb = 0; jb < columns; jb += Tile)
            {
                int re = Math.Min(rows, rb + Tile), je = Math.Min(columns, jb + Tile);
                for (int j = jb; j < je; j++)
                {
                    int c = perm is null ? j : perm[j];
                    for (int r = rb; r < re; r++) wt[(long)j * rows + r] = w[(long)r * columns + c];
                }
            }
    }

    // w[r, perm[j]] = wt[j, r]: the inverse of TransposeColumns.
    internal static void ScatterColumns(float[] wt, int rows, int columns, int[]? perm, float[] w)
    {
        for (int rb = 0; rb < rows; rb += Tile)
            for (int jb = 0; jb < columns; jb += Tile)
            {
                int re = Math.Min(rows, rb + Tile), je = Math.Min(columns, jb + Tile);
                for (int j = jb; j < je; j++)
                {
                    int c = perm is null ? j : perm[j];
                    for (int r = rb; r < re; r++) w[(long)r * columns + c] = wt[(long)j * rows + r];
                }
            }
    }
}
