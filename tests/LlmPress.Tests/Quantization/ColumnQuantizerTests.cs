using LlmPress.Quantization;

namespace LlmPress.Tests.Quantization;

public class ColumnQuantizerTests
{
    // Drives the column API like GPTQ without error feedback: dynamic groups from the (unchanged) weights.
    private static (PackedWeight Packed, float[] Dequantized) RunColumns(ColumnQuantizer q, float[] stored, int[]? order = null)
    {
        int rows = q.Rows, columns = q.Columns, step = q.ColumnsPerStep;
        var deq = new float[rows * columns];
        var values = new float[step * rows];
        var result = new float[step * rows];
        int steps = columns / step;
        for (int k = 0; k < steps; k++)
        {
            int j = (order is null ? k : order[k]) * step;
            if (order is null && j % q.GroupSize == 0) q.ComputeGroupParameters(j / q.GroupSize, stored.AsSpan(j), columns);
            for (int s = 0; s < step; s++)
                for (int r = 0; r < rows; r++) values[s * rows + r] = stored[r * columns + j + s];
            q.QuantizeColumns(j, values, result);
            for (int s = 0; s < step; s++)
                for (int r = 0; r < rows; r++) deq[r * columns + j + s] = result[s * rows + r];
        }
        return (q.Build(), deq);
    }

    public static TheoryData<string> Formats => QuantTestData.AllFormatNames();

    [Theory]
    [MemberData(nameof(Formats))]
    public void ColumnApiWithoutFeedbackIsRoundToNearest(string name)
    {
        var format = QuantFormat.Parse(name);
        foreach (var (rows, cols) in new[] { (13, 100), (8, 300) })
            foreach (var search in format.Kind == QuantKind.Higgs ? [ScaleSearch.MinMax] : new[] { ScaleSearch.MinMax, ScaleSearch.Mse })
            {
                var w = QuantTestData.Gaussian(rows, cols, rows + cols, sigma: 0.02f, outliers: true);
                var rtn = format.Quantize(w, rows, cols, search);
                var stored = format.ToStoredBasis(w, rows, cols);
                var (packed, deq) = RunColumns(format.CreateColumnQuantizer(rows, cols, stored, search), stored);
                QuantTestData.AssertIdentical(rtn, packed);
                // What QuantizeColumns returned is exactly what the packed weight dequantizes to.
                QuantTestData.AssertBitIdentical(packed.DequantizeStored(), deq, name);
            }
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void StaticGroupsInAnyColumnOrderAreRoundToNearest(string name)
    {
        var format = QuantFormat.Parse(name);
        int rows = 9, cols = 260;
        var w = QuantTestData.Gaussian(rows, cols, 77, sigma: 0.5f);
        var stored = format.ToStoredBasis(w, rows, cols);
        var q = format.CreateColumnQuantizer(rows, cols, stored);
        q.ComputeAllGroupParameters(stored);
        var order = Enumerable.Range(0, q.Columns / q.ColumnsPerStep).ToArray();
        new Random(5).Shuffle(order); // act-order: any permutation (of pairs, for HIGGS p = 2)
        var (packed, _) = RunColumns(q, stored, order);
        QuantTestData.AssertIdentical(format.Quantize(w, rows, cols), packed);
    }

    [Fact]
    public void GroupsUseTheWeightsGivenWhenTheGroupIsReached()
    {
        // GPTQ's error feedback changes later columns before their group starts; the parameters must come from those
        // current values, not the original ones.
        var format = QuantFormat.Int(4, 4, symmetric: true);
        int rows = 2, cols = 8;
        var w = QuantTestData.Gaussian(rows, cols, 1);
        var q = format.CreateColumnQuantizer(rows, cols, w);
        var current = (float[])w.Clone();
        var deq = new float[rows];
        for (int j = 0; j < cols; j++)
        {
            if (j % 4 == 0) q.ComputeGroupParameters(j / 4, current.AsSpan(j), cols);
            q.QuantizeColumn(j, [current[j], current[cols + j]], deq);
            if (j == 3) { current[4] *= 10; current[cols + 4] *= 10; } // "error feedback" into the next group
        }
        var packed = q.Build();
        // Row 0, group 1 was computed from the scaled column: its scale is that of max|x| over the updated values.
        float m = MathF.Max(MathF.Max(MathF.Abs(current[4]), MathF.Abs(current[5])), MathF.Max(MathF.Abs(current[6]), MathF.Abs(current[7])));
        Assert.Equal((float)(Half)(2 * m / 15), packed.GetScale(0, 1));
    }

    [Fact]
    public void CompactGroupBlocksWorkLikeStridedViews()
    {
        var format = QuantFormat.Mxfp4();
        int rows = 5, cols = 64;
        var w = QuantTestData.Gaussian(rows, cols, 2);
        var q = format.CreateColumnQuantizer(rows, cols, w);
        var block = new float[rows * 32];
        var deq = new float[rows];
        for (int j = 0; j < cols; j++)
        {
            if (j % 32 == 0)
            {
                for (int r = 0; r < rows; r++) w.AsSpan(r * cols + j, 32).CopyTo(block.AsSpan(r * 32));
                q.ComputeGroupParameters(j / 32, block, rowStride: 32);
            }
            q.QuantizeColumn(j, Enumerable.Range(0, rows).Select(r => w[r * cols + j]).ToArray(), deq);
        }
        QuantTestData.AssertIdentical(format.Quantize(w, rows, cols), q.Build());
    }

    [Fact]
    public void SimpleGptqLoopBeatsRoundToNearestOnTheLayerOutput()
    {
        // A minimal GPTQ (gptq.py without lazy batches) on correlated inputs, to show the API supports the error
        // feedback: the output error ‖X·(W − Q)ᵀ‖² must drop well below RTN's.
        int rows = 16, cols = 64, tokens = 256;
        var rng = new Random(3);
        var x = new double[tokens * cols];
        for (int t = 0; t < tokens; t++)
        {
            double shared = rng.NextDouble() * 2 - 1;
            for (int c = 0; c < cols; c++) x[t * cols + c] = shared + 0.3 * (rng.NextDouble() * 2 - 1);
        }
        var w = QuantTestData.Gaussian(rows, cols, 4);
        var h = new double[cols, cols];
        for (int t = 0; t < tokens; t++)
            for (int i = 0; i < cols; i++)
                for (int j = 0; j < cols; j++) h[i, j] += 2.0 * x[t * cols + i] * x[t * cols + j] / tokens;
        double damp = 0;
        for (int i = 0; i < cols; i++) damp += h[i, i];
        for (int i = 0; i < cols; i++) h[i, i] += 0.01 * damp / cols;
        var u = UpperCholeskyOfInverse(h, cols);

        foreach (var format in new[] { QuantFormat.Int(3, 16, symmetric: true), QuantFormat.Nvfp4(), QuantFormat.Int(4) })
        {
            var current = (float[])w.Clone();
            var q = format.CreateColumnQuantizer(rows, cols, w);
            var column = new float[rows];
            var deq = new float[rows];
            for (int j = 0; j < cols; j++)
            {
                if (j % q.GroupSize == 0) q.ComputeGroupParameters(j / q.GroupSize, current.AsSpan(j), cols);
                for (int r = 0; r < rows; r++) column[r] = current[r * cols + j];
                q.QuantizeColumn(j, column, deq);
                for (int r = 0; r < rows; r++)
                {
                    double err = (column[r] - deq[r]) / u[j, j];
                    for (int k = j + 1; k < cols; k++) current[r * cols + k] -= (float)(err * u[j, k]);
                }
            }
            double gptq = OutputError(q.Build().Dequantize(), w, x, rows, cols, tokens);
            double rtn = OutputError(format.Quantize(w, rows, cols).Dequantize(), w, x, rows, cols, tokens);
            Assert.True(gptq < 0.7 * rtn, $"{format}: GPTQ {gptq} vs RTN {rtn}");
        }
    }

    private static double OutputError(float[] q, float[] w, double[] x, int rows, int cols, int tokens)
    {
        double total = 0;
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++)
            {
                double e = 0;
                for (int c = 0; c < cols; c++) e += x[t * cols + c] * (q[r * cols + c] - w[r * cols + c]);
                total += e * e;
            }
        return total;
    }

    // U with Uᵀ·U = H⁻¹ (gptq.py: cholesky(cholesky_inverse(cholesky(H)), upper=True)).
    private static double[,] UpperCholeskyOfInverse(double[,] h, int n)
    {
        var inv = new double[n, n];
        var a = (double[,])h.Clone();
        for (int i = 0; i < n; i++) inv[i, i] = 1;
        for (int i = 0; i < n; i++) // Gauss–Jordan (H is SPD)
        {
            double p = a[i, i];
            for (int j = 0; j < n; j++) { a[i, j] /= p; inv[i, j] /= p; }
            for (int k = 0; k < n; k++)
            {
                if (k == i) continue;
                double f = a[k, i];
                for (int j = 0; j < n; j++) { a[k, j] -= f * a[i, j]; inv[k, j] -= f * inv[i, j]; }
            }
        }
        var u = new double[n, n];
        for (int i = 0; i < n; i++)
        {
            double s = inv[i, i];
            for (int k = 0; k < i; k++) s -= u[k, i] * u[k, i];
            u[i, i] = Math.Sqrt(s);
            for (int j = i + 1; j < n; j++)
            {
                double t = inv[i, j];
                for (int k = 0; k < i; k++) t -= u[k, i] * u[k, j];
                u[i, j] = t / u[i, i];
            }
        }
        return u;
    }

    [Fact]
    public void MisuseIsReportedClearly()
    {
        var format = QuantFormat.Int(4, 4);
        var w = QuantTestData.Gaussian(2, 8, 1);
        var q = format.CreateColumnQuantizer(2, 8, w);
        var deq = new float[2];
        var e1 = Assert.Throws<InvalidOperationException>(() => q.QuantizeColumn(0, [1f, 2f], deq));
        Assert.Contains("group 0", e1.Message);
        q.ComputeGroupParameters(0, w, 8);
        q.ComputeGroupParameters(0, w, 8); // recomputing before any column is fine
        q.QuantizeColumn(0, [1f, 2f], deq);
        Assert.Throws<InvalidOperationException>(() => q.QuantizeColumn(0, [1f, 2f], deq));
        Assert.Throws<InvalidOperationException>(() => q.ComputeGroupParameters(0, w, 8));
        var e2 = Assert.Throws<ArgumentException>(() => q.QuantizeColumn(1, [1f, float.NaN], deq));
        Assert.Contains("row 1, column 1", e2.Message);
        var e3 = Assert.Throws<ArgumentException>(() => q.ComputeGroupParameters(1, w.AsSpan(0, 10), 8));
        Assert.Contains("group 1", e3.Message);
        var nan = (float[])w.Clone();
        nan[8 + 6] = float.PositiveInfinity;
        var e4 = Assert.Throws<ArgumentException>(() => q.ComputeGroupParameters(1, nan.AsSpan(4), 8));
        Assert.Contains("row 1, column 6", e4.Message);
        Assert.Throws<ArgumentException>(() => q.QuantizeColumn(1, [1f], deq));
        Assert.Throws<ArgumentOutOfRangeException>(() => q.QuantizeColumn(8, [1f, 2f], deq));
        var e5 = Assert.Throws<InvalidOperationException>(() => q.Build());
        Assert.Contains("7 column(s)", e5.Message);

        var higgs = QuantFormat.Higgs(2, 16, 256);
        var hq = higgs.CreateColumnQuantizer(1, 256, new float[256]);
        Assert.Equal(2, hq.ColumnsPerStep);
        hq.ComputeAllGroupParameters(new float[256]);
        Assert.Throws<ArgumentOutOfRangeException>(() => hq.QuantizeColumns(1, new float[2], new float[2]));
        Assert.Throws<ArgumentException>(() => higgs.CreateColumnQuantizer(1, 256, new float[256], ScaleSearch.Mse));
        Assert.Throws<ArgumentException>(() => higgs.CreateColumnQuantizer(1, 256, new float[255]));
    }
}
