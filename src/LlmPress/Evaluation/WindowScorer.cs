using System.Numerics.Tensors;
using LlmPress.Models;
using LlmPress.Numerics;

namespace LlmPress.Evaluation;

/// <summary>
/// Runs one window through a model and sums the negative log-likelihood of its next-token predictions.
/// The LM head is applied in vocabulary slices across all rows at once, with an online log-sum-exp per row:
/// each slice of the head weight is packed once per window (not once per row block), and memory stays at
/// rows × slice floats instead of rows × vocab.
/// </summary>
public sealed class WindowScorer(LlamaModel model)
{
    /// <summary>Vocabulary columns per slice: [2048 rows, 2048] logits = 16 MB.</summary>
    private const int VocabSlice = 2048;

    private readonly ForwardScratch _scratch = new(model.Config);
    private float[] _logits = [];      // [rows, VocabSlice]
    private double[] _rowMax = [];     // running max per row
    private double[] _rowSum = [];     // running Σ exp(x − max) per row
    private float[] _targetLogit = []; // logit of the true next token per row
    private int[] _targets = [];       // the true next token per row

    /// <summary>
    /// Scores predictions of rows [firstRow, window.Length − 1): row t's logits predict window[t + 1].
    /// Returns Σ −log p(window[t + 1] | window[..t]).
    /// </summary>
    public double ScoreWindow(ReadOnlySpan<int> window, int firstRow)
    {
        int d = model.Config.HiddenSize, vocab = model.Config.VocabSize;
        int rows = window.Length - 1 - firstRow;
        if (rows <= 0) return 0;
        var normed = model.ForwardHidden(window, _scratch)[(firstRow * d)..((firstRow + rows) * d)];
        EnsureCapacity(rows);
        Array.Fill(_rowMax, double.NegativeInfinity, 0, rows);
        Array.Clear(_rowSum, 0, rows);

        var head = model.LmHead;
        for (int v0 = 0; v0 < vocab; v0 += VocabSlice)
        {
            int width = Math.Min(VocabSlice, vocab - v0);
            var logits = _logits.AsSpan(0, rows * width);
            Gemm.MultiplyByWeight(normed, rows, head.Weight.SliceRows(v0, width), logits);
            if (head.Bias is { } bias)
                for (int r = 0; r < rows; r++)
                    TensorPrimitives.Add(logits.Slice(r * width, width), bias.AsSpan(v0, width), logits.Slice(r * width, width));
            AccumulateRows(window[(firstRow + 1)..], rows, v0, width);
        }
        double nll = 0;
        for (int r = 0; r < rows; r++)
            nll += _rowMax[r] + Math.Log(_rowSum[r]) - _targetLogit[r];
        return nll;
    }

    /// <summary>Folds one vocabulary slice of every row's logits into the row's running log-sum-exp; rows in parallel.</summary>
    private void AccumulateRows(ReadOnlySpan<int> targets, int rows, int v0, int width)
    {
        // Each row is folded by exactly one thread, in slice order, so the sums do not depend on the thread count.
        const int RowsPerChunk = 64;
        int chunks = (rows + RowsPerChunk - 1) / RowsPerChunk;
        int[] targetArray = _targets;
        targets[..rows].CopyTo(targetArray);
        void Run(int chunk)
        {
            int end = Math.Min(rows, (chunk + 1) * RowsPerChunk);
            for (int r = chunk * RowsPerChunk; r < end; r++)
            {
                var row = _logits.AsSpan(r * width, width);
                int target = targetArray[r] - v0;
                if ((uint)target < (uint)width) _targetLogit[r] = row[target];
                AccumulateLogSumExp(row, ref _rowMax[r], ref _rowSum[r]);
            }
        }
        if (chunks == 1 || Parallelism.MaxThreads == 1)
            for (int c = 0; c < chunks; c++) Run(c);
        else
            Parallel.For(0, chunks, Parallelism.Options, Run);
    }

    /// <summary>Folds a slice into a running (max, Σ exp(x − max)) pair, rescaling the sum when the max grows.</summary>
    private static void AccumulateLogSumExp(Span<float> slice, ref double max, ref double sum)
    {
        float sliceMax = TensorPrimitives.Max(slice);
        if (sliceMax > max)
        {
            sum *= Math.Exp(max - sliceMax);
            max = sliceMax;
        }
        // One fused pass (FastExp: ~2 ulp per value) instead of Subtract, Exp and Sum over the slice.
        sum += FastExp.ExponentiateShiftedSum(slice, (float)max);
    }

    private void EnsureCapacity(int rows)
    {
        if (_rowMax.Length >= rows) return;
        _logits = new float[rows * Math.Min(VocabSlice, model.Config.VocabSize)];
        _rowMax = new double[rows];
        _rowSum = new double[rows];
        _targetLogit = new float[rows];
        _targets = new int[rows];
    }
}
